"""A tiny Inspect task for tests/real-clients/run.sh: 3 questions, 2 epochs, `includes()`, token
logprobs with 2 alternatives (kept small: its converted .json log is a fixture)."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def tiny_arith():
    return Task(
        dataset=[
            Sample(id="add", input="What is 2 + 2? Answer with a number.", target="4"),
            Sample(id="sub", input="What is 10 - 4? Answer with a number.", target="6"),
            Sample(id="capital", input="What is the capital of France? Answer with one word.", target="Paris"),
        ],
        solver=[generate()],
        scorer=includes(),
        epochs=2,
        config=GenerateConfig(max_tokens=16, temperature=0.8, logprobs=True, top_logprobs=2),
    )
