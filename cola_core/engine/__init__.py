"""Engines: where the heavy steps run (local, or Ray); :mod:`.config` imports no Ray."""
