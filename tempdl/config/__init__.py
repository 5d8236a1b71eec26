"""Configuration: the keys, how they are read (flag > env > file > default), and the secret."""
