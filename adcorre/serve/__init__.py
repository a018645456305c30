"""The local web app and JSON API (`server`); the page's files are `static/` (package data)."""
