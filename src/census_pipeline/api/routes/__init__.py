"""One router per resource, assembled by `census_pipeline.api.main.create_app`."""
