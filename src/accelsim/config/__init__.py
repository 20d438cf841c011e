"""Configuration: units-aware, frozen schemas (chips, models, scenarios, studies), a YAML
loader with file:line errors, and the checker of whole configuration files."""
