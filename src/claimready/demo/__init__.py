"""The demo: a managed security operator with client organizations and generated evidence."""
