"""support_agent: customer support with a triage agent and two specialists, in Python.

The twin of ``support_agent.yml`` (the durable_workflow gem's AI example):
both compile to the same definition (``tests/test_examples_python.py`` checks
it).

Shows: tools declared from the service's own methods with ``workflow.tool``
(each tool's description and parameters come from the method's docstring and
type hints); agents as :class:`flowkit.ai.Agent` objects whose ``tools`` are
those methods and whose ``handoffs`` name other agents; the AI step builders
``guardrail``, ``agent`` and ``handoff`` next to the core ``router`` and
``assign``.

Services (``examples.services.support``): ``SupportServices`` — see the module.
"""

from __future__ import annotations

import flowkit
import flowkit.ai as ai
from examples.services.support import SupportServices

__all__ = ["billing", "technical", "triage", "workflow"]

workflow = flowkit.Workflow(
    "support_agent",
    name="Customer Support Agent",
    description="AI-powered customer support with specialized agents",
    inputs={
        "message": flowkit.Input(type=str, description="Customer's support request"),
        "customer_id": flowkit.Input(
            type=str, required=False, description="Optional customer identifier"
        ),
        "context": flowkit.Input(
            type=dict, required=False, description="Additional context (order_id, etc.)"
        ),
    },
)

# --- tools: described by the service methods, run by the registered SupportServices ---------

support = SupportServices
for method in (
    support.classify_request,
    support.lookup_order,
    support.refund_order,
    support.create_ticket,
    support.check_status,
    support.reset_password,
    support.escalate,
):
    workflow.tool(method, service="SupportServices")

# --- agents -------------------------------------------------------------------------------------

triage = ai.Agent(
    "triage",
    name="Triage Agent",
    model="gpt-4o-mini",
    instructions="""\
You are a support triage agent. Analyze the customer's request and determine:
1. The category (billing, technical, general)
2. The urgency (low, medium, high)
3. Key entities mentioned (order IDs, product names, etc.)

Always be polite and acknowledge the customer's concern.
Use the classify_request tool to record your analysis.
""",
    tools=[support.classify_request],
)

billing = ai.Agent(
    "billing",
    name="Billing Agent",
    model="gpt-4o",
    instructions="""\
You are a billing specialist. Help customers with:
- Order lookups and status
- Refunds and cancellations
- Payment issues
- Invoice requests

Always verify the customer's identity before processing sensitive requests.
Use available tools to look up information and take actions.
""",
    tools=[support.lookup_order, support.refund_order, support.create_ticket, support.escalate],
    handoffs=[ai.Handoff("technical", "Transfer to technical support for product issues")],
)

technical = ai.Agent(
    "technical",
    name="Technical Support Agent",
    model="gpt-4o",
    instructions="""\
You are a technical support specialist. Help customers with:
- Product setup and configuration
- Troubleshooting issues
- Password resets
- Account access problems

Be patient and provide step-by-step guidance.
""",
    tools=[support.reset_password, support.check_status, support.create_ticket, support.escalate],
    handoffs=[ai.Handoff(billing, "Transfer to billing for payment issues")],
)

workflow.agents(triage, billing, technical)

# --- steps --------------------------------------------------------------------------------------

workflow.guardrail(
    "moderate_input",
    content="$input.message",
    checks=["moderation", "prompt_injection"],
    on_fail="rejected",
)

workflow.agent(
    "triage",
    agent=triage,
    prompt="""\
Customer message: $input.message
Customer ID: $input.customer_id
Context: $input.context

Please analyze this request and classify it.
""",
    output="triage_result",
)

workflow.router(
    "route_request",
    routes=[
        flowkit.when("triage_result.category", "eq", "billing").then("billing_agent"),
        flowkit.when("triage_result.category", "eq", "technical").then("technical_agent"),
    ],
    default="general_response",
)

workflow.agent(
    "billing_agent",
    agent=billing,
    prompt="""\
Customer request (classified as billing, urgency: $triage_result.urgency):
$input.message

Customer ID: $input.customer_id
Context: $input.context

Please help resolve this billing issue.
""",
    output="agent_response",
    next="check_handoff",
)

workflow.agent(
    "technical_agent",
    agent=technical,
    prompt="""\
Customer request (classified as technical, urgency: $triage_result.urgency):
$input.message

Customer ID: $input.customer_id

Please help resolve this technical issue.
""",
    output="agent_response",
    next="check_handoff",
)

workflow.agent(
    "general_response",
    agent=triage,
    prompt="""\
The customer's request doesn't fit billing or technical categories.
Please provide a helpful general response or ask clarifying questions.

Customer message: $input.message
""",
    output="agent_response",
    next="end",
)

workflow.router(
    "check_handoff",
    routes=[flowkit.when("_handoff_to", "exists").then("handle_handoff")],
    default="end",
)

workflow.handoff(
    "handle_handoff",
    target_agent="$_handoff_to",
    context={
        "original_message": "$input.message",
        "previous_response": "$agent_response",
        "triage": "$triage_result",
    },
    output="agent_response",
    next="end",
)

workflow.assign(
    "rejected",
    set={
        "agent_response": (
            "I apologize, but I cannot process this request. Please contact support directly."
        ),
        "triage_result": None,
    },
)

workflow.end(result={"response": "$agent_response", "triage": "$triage_result"})
