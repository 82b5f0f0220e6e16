"""A local OpenTelemetry Collector, built from Go modules with the collector's builder."""
