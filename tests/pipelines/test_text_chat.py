"""The ``text_chat`` config of the published sample dataset: every chat that parses, turn
by turn, as stage 2 reads it."""

from datasets import concatenate_datasets, load_dataset

from speechinstruct.moss import parse_plain_text


def test_text_chat_rows_are_the_parsed_chats_turn_by_turn(made, published):
    splits = load_dataset(published, "text_chat")
    assert set(splits) == {"train", "validation"} and len(splits["validation"]) >= 1
    rows = sorted(concatenate_datasets(list(splits.values())), key=lambda r: r["id"])
    read = made["chats"][:16]  # the fixture builds with --max-chats 16
    expected = [
        {"id": f"moss_{i:06d}", "turns": parse_plain_text(chat["plain_text"])}
        for i, chat in enumerate(read)
    ]
    assert [r["id"] for r in rows] == [e["id"] for e in expected]
    for row, chat in zip(rows, expected, strict=True):
        assert list(zip(row["human"], row["answer"], strict=True)) == chat["turns"]
