"""Compare services on the same tasks: performance, price and usability, scored with your weights.

    llmos compare --models local:gemma-3-270m,openai:gpt-5.4-mini --tasks qa,translation

Importing this package loads nothing heavy: metrics libraries (sacrebleu, rouge-score, from the
``compare`` extra) and task data load when a comparison runs.
"""
