from streamlit.testing.v1 import AppTest


def test_setup_page_renders_and_previews():
    at = AppTest.from_file("pages/setup.py", default_timeout=120).run()
    assert not at.exception
    assert any("Loaded **cola-tiny**" in s.value for s in at.success)
    at.selectbox(key="preview_corpus").set_value("facts").run()
    assert not at.exception
    assert "facts/pool/000000" in at.dataframe[1].value["id"].tolist()


def test_unknown_model_shows_friendly_error():
    at = AppTest.from_file("pages/setup.py", default_timeout=120).run()
    at.text_input[0].input("nobody/no-such-model").run()
    assert not at.exception
    assert any("could not load model" in e.value for e in at.error)
