"""The NIST CSF 2.0 catalog carries NIST's full wording; mapped items resolve to it."""

from __future__ import annotations

from collections import Counter

from claimready.frameworks.catalog import load_catalog, mapped_items


def test_csf_has_every_function_category_and_subcategory_with_its_text() -> None:
    csf = load_catalog("nist-csf-2.0")
    assert csf.text == "full"
    assert Counter(i.kind for i in csf.items) == {
        "function": 6,
        "category": 22,
        "subcategory": 106,
    }
    for item in csf.items:
        assert item.text and item.text.strip() == item.text, item.id
        assert len(item.title) <= 61, item.id
    functions = [i.id for i in csf.items if i.kind == "function"]
    assert functions == ["GV", "ID", "PR", "DE", "RS", "RC"]


def test_csf_subcategory_text_is_nists_wording() -> None:
    csf = load_catalog("nist-csf-2.0")
    wording = {i.id: i.text for i in csf.items}
    assert wording["GV.OC-01"] == (
        "The organizational mission is understood and informs cybersecurity risk management"
    )
    assert wording["PR.AA-03"] == "Users, services, and hardware are authenticated"
    assert wording["DE.CM-09"] == (
        "Computing hardware and software, runtime environments, and their data are "
        "monitored to find potentially adverse events"
    )
    assert csf.get("PR.AA") is not None
    assert csf.get("PR.AA").title == (  # type: ignore[union-attr]
        "Identity Management, Authentication, and Access Control"
    )
    assert csf.get("ID.BE") is None  # withdrawn with CSF 1.1, not part of 2.0


def test_mapped_items_carry_title_and_text() -> None:
    rows = mapped_items({"nist-csf-2.0": ("PR.AA-03",), "cis-v8.1": ("6.4",), "x": ("y",)})
    assert rows[0] == {
        "framework": "nist-csf-2.0",
        "id": "PR.AA-03",
        "title": "Users, services, and hardware are authenticated",
        "text": "Users, services, and hardware are authenticated",
    }
    assert rows[1]["title"] and rows[1]["text"] is None
    assert rows[2] == {"framework": "x", "id": "y", "title": None, "text": None}
