"""WeChat Official Account protocol: signatures, message XML and safe-mode encryption.

Pure functions and small classes only; nothing here knows about Tornado or the database.
"""
