from pathlib import Path

from safetensors.torch import load_file

from cola_core.zoo.train import TrainConfig, train


def test_training_is_deterministic_for_a_seed(tmp_path):
    def run(out: Path, seed: int):
        cfg = TrainConfig(
            out=str(out),
            seed=seed,
            steps=3,
            batch_size=4,
            seqlen=32,
            vocab_size=300,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            num_kv_heads=1,
            warmup=1,
            max_records=60,
        )
        train(cfg, evaluate=False)
        return load_file(out / "model.safetensors")

    a, b, c = run(tmp_path / "a", 0), run(tmp_path / "b", 0), run(tmp_path / "c", 1)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != c[k]).any() for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
