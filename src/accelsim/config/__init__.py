"""Configuration: units-aware, frozen schemas and a YAML loader with file:line errors."""
