"""Configuration: `keys` (the one table of keys), `settings` (the frozen `Settings`), `load`
(flag > env > file > default), `secret` (the signing key), `toml` and `docs` (what is generated)."""
