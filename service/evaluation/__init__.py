"""``matteserve eval``: metrics of the service's pipelines under the DFIMat user simulator."""
