"""`python -m otel_llm_cost.testing.fake`: the same as `otel-llm-cost fake-provider`."""

from otel_llm_cost.testing.fake.server import main

main()
