"""What vlir sends a judge, byte for byte against the official scripts, on hold-out runs.

A scripted judge (:mod:`tests.eval.benchmarks.judge_support`) records every
``chat.completions.create`` call the runner makes: model, messages (system and user), temperature,
max_tokens and every other parameter. The expected calls are built in this file from the official
source text (the repository and commit are named at each), and the official scoring loops are
ported here as TEST ORACLES (never into vlir) to check the per-item verdicts and the headline.
"""

from __future__ import annotations

import csv
import json
import re

import pytest

from tests.eval.benchmarks.conftest import Planted
from tests.eval.benchmarks.judge_support import scripted_judge
from vlir.eval.benchmarks import base, presets, runner
from vlir.eval.benchmarks.runner import Response

MODEL = "judge-m"

# ---------------------------------------------------------------------------------------------
# MMVP: tsb0601/MMVP@763500597e65c3446f09047837ceda76f4e264bf scripts/gpt_grader.py
# (get_yes_no_answer, question4gpt) and scripts/evaluate_mllm.py ("prompt", "answer", "response")
# ---------------------------------------------------------------------------------------------
MMVP_SYSTEM = ('You are a helpful and precise assistant for checking the quality of the answer. '
               'Please answer in only yes or no.')


def mmvp_official_call(row: dict[str, str], outputs: str) -> dict:
    question = row['Question'] + " " + row['Options']          # evaluate_mllm.py cur_prompt
    correct_answer, model_response = row["Correct Answer"], outputs.strip()
    question4gpt = (f"Given the following question {question}, the correct answer is {correct_answer}. Does the "
                    f"following answer correctly answers the question, answer:{model_response}?")
    return {"model": MODEL, "messages": [{'role': 'system', 'content': MMVP_SYSTEM},
                                         {'role': 'user', 'content': question4gpt}], "temperature": 0.2}


def mmvp_official_accuracy(grades: list[str]) -> float:
    """TEST ORACLE: gpt_grader.py's loop over the answer file (pairs of consecutive lines)."""
    yes_no_regex = re.compile(r"^(yes|no)$", re.IGNORECASE)
    num_correct, num_total, index, round_correct = 0, 0, 0, 0
    for answer in grades:
        gpt_grade = answer.lower() if yes_no_regex.match(answer) else "Could not determine yes or no."
        index += 1
        if gpt_grade == "yes":
            round_correct += 1
        if index == 2:
            index = 0
            if round_correct == 2:
                num_correct += 1
            round_correct = 0
            num_total += 1
    return num_correct / num_total


def test_mmvp_judge_calls_and_pair_accuracy_equal_the_grader(tmp_path):
    M = base.get("mmvp")
    M.write_sample(tmp_path / "mmvp", n=8)
    with open(tmp_path / "mmvp" / "Questions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    responses = {q["Index"]: r for q, r in zip(rows, [
        "(a) Left", "  <think>It is red.</think> <answer>(b)</answer>\n", "Left", "right",
        "The square is on the left side.", "(b) Right", "a", "Yes, it is on the right"])}
    replies = ["Yes", "yes", "no", "Yes.", "yes", "YES", "yes\n", "No"]  # one reply per item, in order
    by_response = {r.strip(): replies[i] for i, r in enumerate(responses.values())}
    judge, client = scripted_judge(tmp_path, lambda kw: by_response[kw["messages"][1]["content"]
                                                                    .split("answer:", 1)[1][:-1]])
    in_order = iter(responses[q["Index"]] for q in rows)  # the runner asks in the file's order
    planted = Planted(lambda q: Response(next(in_order)))
    items = list(M.items(tmp_path / "mmvp"))
    scores = runner.run(M, iter(items), planted, tmp_path / "out", presets.preset("model"), judge=judge)
    assert client.sent == [mmvp_official_call(q, responses[q["Index"]]) for q in rows]  # byte for byte
    assert scores["scores"]["overall"] == pytest.approx(mmvp_official_accuracy(replies))
    verdicts = [json.loads(x)["score"] for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert verdicts == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert scores["judge"] == {"model": MODEL, "base_url": None, "api_key_env": "OPENAI_API_KEY", "input": "response"}


# ---------------------------------------------------------------------------------------------
# MathVista: lupantech/MathVista@53d525874bdde205128e6b160b7357a88277d479
# evaluation/extract_answer.py (extract_answer, create_test_prompt; --quick_extract off by
# default), evaluation/prompts/ext_ans.py (demo_prompt), models/gpt.py (GPT_Model.get_response)
# ---------------------------------------------------------------------------------------------
OFFICIAL_DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""


class OfficialGPT:
    """TEST ORACLE: GPT_Model.get_response's request (one user message holding one text part,
    temperature 0, max_tokens 1024, n 1) and its stripped reply, with a scripted reply."""

    def __init__(self, reply):
        self.reply, self.calls = reply, []

    def get_response(self, user_prompt):
        call = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": user_prompt}]}],
                "temperature": 0, "max_tokens": 1024, "n": 1}
        self.calls.append(call)
        return self.reply(call).strip()


def oracle_extract_answer(model, response, problem, quick_extract=False):
    """TEST ORACLE: extract_answer.py's extract_answer (logging left out)."""
    if response == "":
        return ""
    if problem['question_type'] == 'multi_choice' and response in problem['choices']:
        return response
    if problem['answer_type'] == "integer":
        try:
            return str(int(response))
        except Exception:
            pass
    if problem['answer_type'] == "float":
        try:
            return str(float(response))
        except Exception:
            pass
    if quick_extract:
        result = re.search(r'The answer is "(.*)"\.', response)
        if result:
            return result.group(1)
    demo_prompt = OFFICIAL_DEMO_PROMPT.strip()
    full_prompt = f"{demo_prompt}\n\n{problem['query']}\n\n{response}\n\nExtracted answer: "
    try:
        return model.get_response(user_prompt=full_prompt)
    except Exception:
        return ""


def test_mathvista_extraction_calls_and_extractions_equal_the_official(tmp_path):
    V = base.get("mathvista")
    V.write_sample(tmp_path / "mv", n=8)
    items = list(V.items(tmp_path / "mv"))
    problems = json.loads((tmp_path / "mv" / "data" / "testmini.json").read_text())
    queries = json.loads((tmp_path / "mv" / "data" / "query.json").read_text())
    responses = []
    for k, it in enumerate(items):
        tagged = f"<think>I add the bars.</think>\n<answer>{it.answer}</answer>"
        responses.append([tagged, it.answer, f'The answer is "{it.answer}".', "",
                          f"  {it.answer} ", f"It is {it.answer}.", tagged, it.answer][k])

    def reply(call):
        text = call["messages"][0]["content"][0]["text"]
        return f" {text.rsplit('<answer>', 1)[-1].split('</answer>')[0]} " if "<answer>" in text else "7"

    judge, client = scripted_judge(tmp_path, reply)
    in_order = iter(responses)  # the runner asks in the reader's order
    runner.run(V, iter(items), Planted(lambda q: Response(next(in_order))), tmp_path / "out",
               presets.preset("model"), judge=judge)
    gpt = OfficialGPT(reply)
    official = [oracle_extract_answer(gpt, response, {**problems[it.meta["pid"]], "query": queries[it.meta["pid"]]})
                for it, response in zip(items, responses)]
    # the same calls, byte for byte, in order; a repeated request is answered by vlir's cache
    first_seen = [c for i, c in enumerate(gpt.calls) if c not in gpt.calls[:i]]
    assert client.sent == first_seen and len(first_seen) >= 4
    rows = [json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert [r["extracted"] for r in rows] == official


# ---------------------------------------------------------------------------------------------
# HR-Bench: DreamMr/HR-Bench@b17b1998fa2c1b71a737c126155826a94149ed13
# hrbench/vlmeval/dataset/utils/hrbench.py (build_prompt, pipeline_eval, parse_score)
# ---------------------------------------------------------------------------------------------

def hr_official_call(line: dict[str, str], prediction: str) -> dict:
    """TEST ORACLE: build_prompt + pipeline_eval's input (a plain string prompt: one user
    message), GenerationConfig(top_p=0.8, top_k=40, temperature=0.2) minus top_k."""
    question, label = line['question'], line['answer']
    options = {c: line[c] for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c in line and line[c] != ""}
    options_prompt = 'Options:\n'
    for key, item in options.items():
        options_prompt += f'{key}. {item}\n'
    prompt = f'{question}\n'
    if len(options):
        prompt += options_prompt
        prompt += 'Please select the correct answer from the options above. \n'
    content = (f"Given the following question: {prompt}, the correct answer is: {label}. {line[label]}. Does the "
               f"following answer correctly answers the question, answer:{prediction}?")
    inp = ("You are a helpful and precise assistant for checking the quality of the answer. "
           "Please answer in only yes or no. {}".format(content))
    return {"model": MODEL, "messages": [{"role": "user", "content": inp}], "temperature": 0.2, "top_p": 0.8}


def test_hrbench_judge_calls_equal_the_official(tmp_path):
    H = base.get("hrbench4k")
    H.write_sample(tmp_path / "hr", n=4)
    with open(tmp_path / "hr" / "hr_bench_4k.tsv", newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh, delimiter="\t"))
    items = list(H.items(tmp_path / "hr"))
    said = ["<answer>A</answer>", "B", "It is the yellow one.", "Cannot determine the answer"]
    by_q = {it.question: s for it, s in zip(items, said)}
    judge, client = scripted_judge(tmp_path, lambda kw: "Yes, it does"
                                   if "yellow" in kw["messages"][0]["content"].split("answer:")[-1] else "no")
    scores = runner.run(H, iter(items), Planted(lambda q: Response(by_q[q])), tmp_path / "out",
                        presets.preset("model"), judge=judge)
    assert client.sent == [hr_official_call(line, s) for line, s in zip(lines, said)]
    verdicts = [json.loads(x)["score"] for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert verdicts == [0.0, 0.0, 1.0, 0.0]  # parse_score: the lower-cased reply starts with "yes"
    assert scores["trajectories"]["judged_by"] == {MODEL: 4}
