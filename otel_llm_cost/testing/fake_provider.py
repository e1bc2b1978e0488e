"""The fake provider, under the name it had before it became a package (`otel_llm_cost.testing.fake`,
one module per wire format). `python -m otel_llm_cost.testing.fake_provider` still serves it."""

from otel_llm_cost.testing.fake import Fault, FakeProvider, ModelBehaviour, add_arguments, main, serve

__all__ = ["FakeProvider", "ModelBehaviour", "Fault", "add_arguments", "serve", "main"]

if __name__ == "__main__":
    main()
