"""The CLI's commands in groups: data, pipeline stages, models, analysis. Thin: each calls into models_py or jobs."""
