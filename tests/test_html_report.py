"""report.html: self-contained, escaped, and working in a real headless browser (Chromium)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from headless import chrome, console_errors, missing_reason
from PIL import Image
from test_exports import CLASSES, make_bench

from harness.commands.report import compare_cmd, report_cmd
from harness.exports import analyse, write_all
from harness.exports.html_assets import json_for_script
from harness.exports.html_images import benchmark_thumbnails, thumbnails
from harness.results.store import ResultsStore

XSS = '</script><script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
EVIL_ID = 'rslora+<img src=x onerror="window.__xss=3">@s9'  # ids reach the static tables too
UNREADABLE = "img007"


class _S:  # the shape thumbnails() reads: id, label, report, image
    def __init__(self, sid: str, label: str, image: object) -> None:
        self.id, self.label, self.report, self.image = sid, label, f"Report of {sid}.", image


def bench_with_payload(n: int = 40):
    rows, prov, base = make_bench(n=n)
    rows[0]["predictions"][3]["answer"] = XSS  # model answers are untrusted
    rows[0]["predictions"][3]["valid"] = False
    rows[0]["predictions"][3]["prediction"] = None
    rows[1]["config_id"] = EVIL_ID
    return rows, prov, base


def images_for(rows, broken: str = UNREADABLE):
    rng = np.random.default_rng(0)
    samples = []
    for p in rows[0]["predictions"]:
        img = Image.fromarray(rng.integers(0, 255, (200, 160), dtype=np.uint8), mode="L")
        samples.append(_S(p["id"], p["label"], "not an image" if p["id"] == broken else img))
    return thumbnails(samples)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("html")
    rows, prov, base = bench_with_payload()
    write_all(out, rows, prov, base, n_resamples=200, images=images_for(rows))
    return out / "report.html", rows


def test_report_is_one_self_contained_escaped_file(report) -> None:
    path, rows = report
    text = path.read_text(encoding="utf-8")
    assert XSS not in text and "window.__xss=1</script>" not in text
    assert EVIL_ID not in text and "&lt;img src=x onerror=&quot;window.__xss=3&quot;&gt;" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "no network references"
    assert "<link" not in text and "@import" not in text
    # every test image once, as a downscaled JPEG
    uris = re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+", text)
    assert len(uris) == len(rows[0]["predictions"]) - 1  # one placeholder
    thumb = Image.open(__import__("io").BytesIO(__import__("base64").b64decode(uris[0][23:])))
    assert max(thumb.size) <= 128
    assert "data:image/png;base64," in text  # the plots are embedded
    sort_keys = re.findall(r'data-v="([^"]*)"', text)
    assert sort_keys and all(np.isfinite(float(v)) for v in sort_keys)  # every key parses
    doc = json.loads(re.search(r'id="report-data"[^>]*>(.*?)</script>', text, re.S).group(1))
    base = next(c for c in doc["configs"] if c["id"] == "base")
    assert base["answers"][rows[0]["predictions"][3]["id"]]["answer"] == XSS


def test_json_for_script_cannot_close_its_element() -> None:
    text = json_for_script({"a": "</script><!-- \u2028 &amp;"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028 &amp;"}


def test_unreadable_image_is_a_placeholder_not_a_failure() -> None:
    thumbs = thumbnails([_S("a", "normal", object()), _S("b", "normal", Image.new("L", (9, 9)))])
    assert thumbs["a"].uri == "" and thumbs["a"].error
    assert thumbs["b"].uri.startswith("data:image/jpeg;base64,")


def test_report_reads_images_back_from_a_built_benchmark_folder(tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    (folder / "images").mkdir(parents=True)
    rows, prov, base = make_bench(n=8)
    lines = []
    for i, p in enumerate(rows[0]["predictions"]):
        name = f"images/{p['id']}.png"
        Image.new("L", (300, 240), 30 * i).save(folder / name)
        lines.append(
            json.dumps(
                {
                    "id": p["id"],
                    "label": p["label"],
                    "path": name,
                    "split": "test",
                    "report": f"ref {i}",
                    "sha256": "-",
                }
            )
        )
    (folder / "images" / f"{rows[0]['predictions'][2]['id']}.png").write_bytes(b"broken")
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "benchmark.json").write_text(json.dumps({"name": "b", "fingerprint": "f1"}))
    prov["benchmark"].update(source=str(folder), fingerprint="f1")
    thumbs, note = benchmark_thumbnails(prov, [p["id"] for p in rows[0]["predictions"]])
    assert len(thumbs) == 8 and note == "1 of 8 test images could not be read"
    assert thumbs[rows[0]["predictions"][1]["id"]].report == "ref 1"
    prov["benchmark"]["fingerprint"] = "other"
    thumbs, note = benchmark_thumbnails(prov, ["img000"])
    assert thumbs == {} and "fingerprint f1" in note  # never shows another benchmark's images
    run = tmp_path / "run"
    prov["benchmark"]["fingerprint"] = "f1"
    with ResultsStore.open(run) as store:
        run_id = store.save_run(prov, base)
        for r in rows:
            store.save_config_result(r, run_id)
    res = CliRunner().invoke(report_cmd, [str(run), "--no-plots", "--resamples", "100"])
    assert res.exit_code == 0, res.output
    assert "1 of 8 test images could not be read" in res.output
    html = (run / "report.html").read_text()
    assert len(re.findall(r"data:image/jpeg;base64,", html)) == 7


# ---------------------------------------------------------------- in a real browser

browser = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


def _count(session, css: str) -> int:
    return len(session.find_elements("css selector", css))


def _expected(rows, config: str | None = None, **want) -> set[str]:
    out = set()
    for r in rows:
        if config and r["config_id"] != config:
            continue
        for p in r["predictions"]:
            if want.get("label") and p["label"] != want["label"]:
                continue
            bad = not p["valid"] or p["prediction"] != p["label"]
            if want.get("wrong") and not bad or want.get("invalid") and p["valid"]:
                continue
            out.add(p["id"])
    return out


def _click(session, element) -> None:
    """Click like a user who first scrolled the element to the middle of the window."""
    session.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _shown(session) -> set[str]:
    cards = session.find_elements("css selector", "#gallery .card")
    return {c.get_attribute("data-id") for c in cards}


@browser
def test_browser_loads_without_errors_and_filters(report) -> None:
    from selenium.webdriver.support.ui import Select

    path, rows = report
    n = len(rows[0]["predictions"])
    with chrome() as s:
        s.get(path.as_uri())
        assert console_errors(s) == []
        assert s.execute_script("return window.__xss === undefined")
        assert _count(s, "#gallery .card") == n
        assert _count(s, "#gallery .card img") == n - 1 and _count(s, "#gallery .ph") == 1
        assert s.find_element("id", "count").text == f"{n} of {n} images"
        payload = s.find_element(
            "css selector", f'.card[data-id="{rows[0]["predictions"][3]["id"]}"]'
        )
        assert XSS in payload.text  # shown as text, not run
        assert EVIL_ID in s.find_element("id", "leaderboard-table").text
        Select(s.find_element("id", "cm-config")).select_by_visible_text(EVIL_ID)
        Select(s.find_element("id", "f-class")).select_by_value("pneumonia")
        assert _shown(s) == _expected(rows, label="pneumonia") and len(_shown(s)) < n
        Select(s.find_element("id", "f-class")).select_by_value("")
        Select(s.find_element("id", "f-config")).select_by_value("base")
        s.find_element("id", "f-wrong").click()
        assert _shown(s) == _expected(rows, "base", wrong=True)
        s.find_element("id", "f-wrong").click()
        s.find_element("id", "f-invalid").click()
        assert _shown(s) == _expected(rows, "base", invalid=True)
        Select(s.find_element("id", "f-config")).select_by_value("")
        assert _shown(s) == _expected(rows, invalid=True)
        s.find_element("id", "f-invalid").click()
        assert _count(s, "#gallery .card") == n
        assert console_errors(s) == []


@browser
def test_browser_sorts_the_leaderboard(report) -> None:
    path, _ = report
    with chrome() as s:
        s.get(path.as_uri())
        heads = s.find_elements("css selector", "#leaderboard-table thead th")
        col = next(i for i, h in enumerate(heads) if h.text.startswith("Accuracy"))

        def column() -> list[float]:
            cells = s.find_elements(
                "css selector", f"#leaderboard-table tbody td:nth-child({col + 1})"
            )
            return [float(c.get_attribute("data-v")) for c in cells if c.get_attribute("data-v")]

        def names() -> list[str]:
            return [
                e.text
                for e in s.find_elements("css selector", "#leaderboard-table tbody td:first-child")
            ]

        before = names()
        heads[col].click()
        assert column() == sorted(column(), reverse=True) and len(column()) >= 3
        heads[col].click()
        assert column() == sorted(column())
        assert names() != before or names()[::-1] != before  # rows moved with their values
        assert console_errors(s) == []


@browser
def test_browser_confusion_cell_opens_its_images(report) -> None:
    from selenium.webdriver.support.ui import Select

    path, rows = report
    base = next(r for r in rows if r["config_id"] == "base")
    wrong = next(p for p in base["predictions"] if p["valid"] and p["prediction"] != p["label"])
    cell_ids = {
        p["id"]
        for p in base["predictions"]
        if p["label"] == wrong["label"] and p["valid"] and p["prediction"] == wrong["prediction"]
    }
    with chrome() as s:
        s.get(path.as_uri())
        Select(s.find_element("id", "cm-config")).select_by_visible_text("base")
        sel = (
            f'td.cell[data-config="base"][data-true="{wrong["label"]}"]'
            f'[data-pred="{wrong["prediction"]}"]'
        )
        td = s.find_element("css selector", sel)
        assert int(td.text) == len(cell_ids)
        _click(s, td)
        assert _shown(s) == cell_ids
        assert "true " + wrong["label"] in s.find_element("id", "cell-banner").text
        inval = s.find_element(
            "css selector",
            f'td.cell[data-config="base"][data-true="{CLASSES[0]}"][data-pred="invalid"]',
        )
        _click(s, inval)
        assert _shown(s) == {
            p["id"] for p in base["predictions"] if p["label"] == CLASSES[0] and not p["valid"]
        }
        _click(s, s.find_element("id", "cell-clear"))
        assert len(_shown(s)) == len(base["predictions"])
        assert console_errors(s) == []


@browser
def test_console_errors_are_seen(tmp_path: Path) -> None:
    """The check above could fail: a page that throws is reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><script>undefinedFunction()</script>")
    with chrome() as s:
        s.get(page.as_uri())
        assert any("undefinedFunction" in m for m in console_errors(s))


def test_analysis_classes_drive_the_report_order(report) -> None:
    path, rows = report
    an = analyse(rows, make_bench()[1], 100)
    text = path.read_text()
    doc = json.loads(re.search(r'id="report-data"[^>]*>(.*?)</script>', text, re.S).group(1))
    labels = [i["label"] for i in doc["images"]]
    assert labels == sorted(labels, key=an["classes"].index)


@browser
def test_compare_writes_a_working_html_page(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> Path:
        rows, prov, base = make_bench(seed=seed)
        prov["benchmark"]["source"] = str(tmp_path / "no-such-benchmark")
        with ResultsStore.open(tmp_path / name) as store:
            rid = store.save_run(prov, base)
            for r in rows:
                store.save_config_result(r, rid)
        return tmp_path / name

    a, b = run("a", 0), run("b", 1)
    page = tmp_path / "cmp.html"
    res = CliRunner().invoke(compare_cmd, [str(a), str(b), "--html", str(page)])
    assert res.exit_code == 0, res.output
    n_configs = 3
    with chrome() as s:
        s.get(page.as_uri())
        assert console_errors(s) == []
        assert _count(s, "#leaderboard-table tbody tr") == n_configs
        assert _count(s, "#gallery .card") == 40
        assert _count(s, "#gallery .ph") == 40  # the benchmark is gone: placeholders, no failure
        first = s.find_element("css selector", "#gallery .card")
        assert len(first.find_elements("css selector", "tr")) == 1 + 2 * n_configs


@browser
def test_browser_draws_long_galleries_in_pages(tmp_path: Path) -> None:
    rows, prov, base = make_bench(n=130)
    write_all(tmp_path, rows, prov, base, n_resamples=100, plots=False, images=images_for(rows))
    with chrome() as s:
        s.get((tmp_path / "report.html").as_uri())
        assert s.find_element("id", "count").text == "130 of 130 images (first 60 shown)"
        assert _count(s, "#gallery .card") == 60
        for shown in (120, 130):
            _click(s, s.find_element("id", "more"))
            assert _count(s, "#gallery .card") == shown
        assert not s.find_element("id", "more").is_displayed()
        assert _count(s, "#gallery .card img") == 129  # one placeholder
        assert console_errors(s) == []


def test_plugin_metrics_get_per_sample_columns() -> None:
    """A plugin metric's stored per-sample statistics become one score per image (each image's
    statistics combined alone), shown under the metric's title."""
    from harness.components import MetricItem
    from harness.exports.html_images import gallery_data, plugin_sample_scores
    from harness.plugins import make_registry

    chrf = make_registry().create("metric", "chrf")
    rows, _, _ = make_bench(n=6)
    row = rows[1]
    said = ["a large left effusion", "small effusion", "clear lungs", "left effusion"]
    items = [
        MetricItem(
            p["id"],
            p["label"],
            p["prediction"],
            said[k % 4],
            "a large left pleural effusion" if k % 3 else "",
        )
        for k, p in enumerate(row["predictions"])
    ]
    st = np.asarray(chrf.statistics(items, CLASSES), dtype=np.float64)
    row["metric_stats"] = {"chrf": st.tolist()}
    scores = plugin_sample_scores(rows, [chrf.column()], CLASSES)
    alone = [float(chrf.combine(st[k : k + 1], CLASSES)[0]) for k in range(len(items))]
    want = {it.id: {"chrf": v} for it, v in zip(items, alone, strict=True) if np.isfinite(v)}
    assert want and scores == {row["config_id"]: want}
    assert len({v["chrf"] for v in want.values()}) > 1  # per image, not the corpus value
    doc = gallery_data([("", rows)], {}, CLASSES, {"chrf": "chrF"}, scores)
    assert doc["sample_metrics"][-1] == "chrf" and doc["sample_titles"][-1] == "chrF"
    answers = next(c for c in doc["configs"] if c["id"] == row["config_id"])["answers"]
    assert answers[items[1].id]["metrics"]["chrf"] == want[items[1].id]["chrf"]
