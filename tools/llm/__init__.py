"""Chat models: Ollama, any OpenAI-compatible server, or the bundled SmolLM2 model.

Import from the module that owns a name; this package re-exports nothing.
settings (LLMSettings, role_settings, RequestLimit, PROVIDERS), errors (ModelProviderError,
ModelCallError and their kinds), ollama (probe, ChatOllama setup), openai_compat (ChatOpenAI
setup), options (with_output_limit, with_temperature, structured), provider (ModelProvider,
ProviderInfo).
"""
