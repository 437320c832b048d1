"""OpenTelemetry semantic-convention names the collector reads: attribute keys, event names and
the operation values, as constants, so a misspelling is a NameError rather than a silent miss.

The canonical form is OpenTelemetry GenAI v1.41.1 (`gen_ai.*`), plus the general registry keys
the normaliser uses (session, user, server address). What other producers call the same facts
is declared with each producer (`processors/producers/`), not here.
"""

from __future__ import annotations

# -- gen_ai.* span attributes --------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated: gen_ai.provider.name
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"

GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # deprecated: input_tokens
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"  # deprecated: output_tokens
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"

GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_PROMPT = "gen_ai.prompt"  # deprecated: gen_ai.input.messages
GEN_AI_COMPLETION = "gen_ai.completion"  # deprecated: gen_ai.output.messages

# -- Tracehouse's own content marks (its instrumentation, v1.41.1-conformant since issue 13) -------
# The content attributes shortened to fit the size cap (a string array), each cut string
# ending with TRUNCATION_MARK.
TRACEHOUSE_CONTENT_TRUNCATED = "tracehouse.content.truncated"
TRUNCATION_MARK = "…[truncated]"

# -- evaluation events ---------------------------------------------------------------------------
GEN_AI_EVALUATION_RESULT = "gen_ai.evaluation.result"  # the event name
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

# -- general registry ----------------------------------------------------------------------------
SESSION_ID = "session.id"
USER_ID = "user.id"
ENDUSER_ID = "enduser.id"
SERVER_ADDRESS = "server.address"

# -- gen_ai.operation.name values ----------------------------------------------------------------
CHAT = "chat"
TEXT_COMPLETION = "text_completion"
EMBEDDINGS = "embeddings"
GENERATE_CONTENT = "generate_content"
RERANK = "rerank"  # not (yet) an OTel value; what rerankers are called across producers
EXECUTE_TOOL = "execute_tool"
INVOKE_AGENT = "invoke_agent"
CREATE_AGENT = "create_agent"
INVOKE_WORKFLOW = "invoke_workflow"
RETRIEVAL = "retrieval"
# Tracehouse's names for what other producers mark and OTel has no value for.
AGENT_STEP = "agent_step"
EXECUTE_TASK = "execute_task"
CHAIN = "chain"
GUARDRAIL = "guardrail"
EVALUATION = "evaluation"
PLAN = "plan"
PROMPT = "prompt"
PARSE = "parse"
MEMORY = "memory"

# Operations that are not a model call. Their spans often carry the *aggregate* usage of the
# model calls beneath them (Vercel ai.generateText, pydantic-ai "agent run", Strands and
# OpenInference AGENT spans, OTel invoke_agent), so usage and cost are not read from them:
# summing a trace would otherwise count every token twice. Token estimation should likewise
# skip them (their facts carry no usage and no input/output text).
NON_MODEL_OPERATIONS = frozenset(
    {
        INVOKE_AGENT,
        CREATE_AGENT,
        AGENT_STEP,
        INVOKE_WORKFLOW,
        EXECUTE_TOOL,
        EXECUTE_TASK,
        CHAIN,
        RETRIEVAL,
        GUARDRAIL,
        EVALUATION,
        PLAN,
        PROMPT,
        PARSE,
        MEMORY,
        "create_memory",
        "update_memory",
        "upsert_memory",
        "delete_memory",
        "search_memory",
        "create_memory_store",
        "delete_memory_store",
    }
)
