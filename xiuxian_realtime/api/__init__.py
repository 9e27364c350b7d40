"""The REST API, on the same port as /ws. Errors are `{"error": "..."}` as in the original."""
