"""Instrumentation overhead benchmark: CPU µs per OpenAI chat call, Tracehouse vs other instrumentors."""
