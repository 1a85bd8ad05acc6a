"""The renderer of the result tables (docs/render.py and its table modules): the committed pages equal what
it renders from the committed result files, and it works on made-up result files of every kind (the
runner's, the earlier scripts', re-clustered networks, ablations)."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _render_module():
    spec = importlib.util.spec_from_file_location("docs_render", DOCS / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _render_module()


def test_rendered_tables_match_their_result_files(capsys):
    code = render.main(["--check"], root=ROOT)
    assert code == 0, ("a table differs from its result file; run `python docs/render.py`:\n"
                       + capsys.readouterr().err)


def test_pages_render_every_required_table():
    pages = ("README.md", "docs/results.md", "docs/ablations.md", "docs/benchmarks.md", "docs/large_images.md")
    text = {p: (ROOT / p).read_text(encoding="utf-8") for p in pages}
    for page, names in {"README.md": ("demo", "defaults:short"),
                        "docs/results.md": ("defaults", "defaults_seeds:cvppp_a1", "defaults_seeds:bbbc010",
                                            "defaults_seeds:ctc_dic_c2dh_hela", "demo_seeds", "floor_check"),
                        "docs/ablations.md": ("ablation:loss", "ablation:guide_range", "ablation:decoder",
                                              "ablation:guides", "recovery", "recluster"),
                        "docs/benchmarks.md": ("first_run", "warm_start", "shared_cpu", "fuzz"),
                        "docs/large_images.md": ("dask_stages", "dask_equivalence", "mode_search", "dask_memory",
                                                 "dask_sweep")}.items():
        for name in names:
            assert f"<!-- table:{name} -->" in text[page], f"{page} lacks the table {name!r}"


def _defaults_result(dataset, seed, sbd, floor_sbd, coco=0.5, ap=0.6, fit=700.0, **params):
    metrics = lambda s, a, c: {"SBD": s, "AP@0.5 (TP/(TP+FP+FN))": a, "COCO AP": c}  # noqa: E731
    params = dict(max_time=720.0, random_state=seed, **params)
    return dict(dataset=dataset, seed=seed, params=params, max_time=params["max_time"], fit_seconds=fit,
                n_epochs=90, scale=0.5,
                SBD=sbd, COCO_AP=coco, machine={"cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2,
                                                 "cpu_avx512_bf16": True, "torch": "2.13.0+cpu"},
                rows={"harmonic, predicted foreground": metrics(sbd, ap, coco),
                      "harmonic, given foreground": metrics(0.99, 0.99, 0.99),
                      "floor: connected components of the predicted foreground": metrics(floor_sbd, 0.1, 0.05)})


def _fake_project(tmp_path, results):
    out = tmp_path / "benchmarks" / "results"
    out.mkdir(parents=True)
    for name, data in results.items():
        (out / name).write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# page\n\ntext before\n\n<!-- table:defaults -->\nstale\n<!-- /table:defaults -->\n\n"
                    "<!-- table:defaults_seeds:bbbc010 -->\n<!-- /table:defaults_seeds:bbbc010 -->\n\ntext after\n",
                    encoding="utf-8")
    return page


def test_render_defaults_from_the_seeds_that_exist(tmp_path):
    page = _fake_project(tmp_path, {
        "defaults_bbbc010_seed0.json": _defaults_result("bbbc010", 0, 0.80, 0.70, coco=0.50, num_threads=2),
        "defaults_bbbc010_seed2.json": _defaults_result("bbbc010", 2, 0.90, 0.72, coco=0.60, num_threads=2),
        "defaults_cvppp_a1_seed1.json": _defaults_result("cvppp_a1", 1, 0.85, 0.15, fit=650.0),
    })
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# page\n\ntext before\n\n") and text.endswith("\n\ntext after\n")
    assert "stale" not in text
    lines = text.splitlines()
    # CVPPP first (the order of DATASET_NAMES), one seed: the value alone
    row = next(l for l in lines if l.startswith("| CVPPP A1 leaves"))
    assert row.split(" | ")[2:5] == ["1", "0.850", "0.600"]
    # BBBC010, two seeds: mean ± sample sd (0.85 ± 0.0707), the floor, the paper's COCO AP
    row = next(l for l in lines if l.startswith("| BBBC010 worms"))
    assert row.split(" | ")[2:6] == ["2", "0.850 ± 0.071", "0.600 ± 0.000", "0.550 ± 0.071"]
    floor = lines[lines.index(row) + 1]
    assert "floor" in floor and "0.710 ± 0.014" in floor
    paper = lines[lines.index(row) + 2]
    assert "paper" in paper and paper.split(" | ")[3:6] == ["–", "–", "0.724"]
    assert "seeds 0, 1, 2" in text and "`python benchmarks/defaults.py --threads 2`" in text
    # what the runs set besides random_state is said, per data set
    assert "| defaults, `max_time=720, num_threads=2` | 2 |" in text
    assert "| defaults, `max_time=720` | 1 |" in text
    assert "`python benchmarks/defaults.py --datasets bbbc010 --threads 2`" in text
    assert "defaults_bbbc010_seed2.json" in text and "2-core Intel Xeon (AVX-512 BF16)" in text
    # the per-seed table of one data set
    seed_rows = [l for l in lines if re.match(r"\| [02] \| 0\.", l)]
    assert [r.split(" | ")[1] for r in seed_rows] == ["0.800", "0.900"]
    # a second run changes nothing, and --check agrees
    assert render.main([], root=tmp_path) == 0 and page.read_text(encoding="utf-8") == text
    assert render.main(["--check"], root=tmp_path) == 0


def test_render_puts_the_hand_recipe_on_the_same_budget_beside_the_defaults(tmp_path):
    def recipe(seed, sbd):
        r = _defaults_result("ctc_dic_c2dh_hela", seed, sbd, 0.3, coco=0.6)
        del r["fit_seconds"]  # reproduce.py recorded the fit's wall time as train_seconds
        return {**r, "train_seconds": 710.0, "command": "python benchmarks/reproduce.py ctc_dic_c2dh_hela "
                f"--loss discriminative --max-time 720 --seed {seed}"}

    page = _fake_project(tmp_path, {
        "defaults_ctc_dic_c2dh_hela_seed0.json": _defaults_result("ctc_dic_c2dh_hela", 0, 0.80, 0.30),
        "recipe_ctc_dic_c2dh_hela_seed0.json": recipe(0, 0.82),
        "recipe_ctc_dic_c2dh_hela_seed1.json": recipe(1, 0.84),
    })
    assert render.main([], root=tmp_path) == 0
    lines = page.read_text(encoding="utf-8").splitlines()
    row = next(l for l in lines if l.startswith("| DIC-C2DH-HeLa cells"))
    hand = lines[lines.index(row) + 1]
    assert hand.startswith("|  | hand recipe, `max_time=720` | 2 | 0.830 ± 0.014 |") and hand.endswith("| 710 |")
    assert "floor" in lines[lines.index(row) + 2]
    text = "\n".join(lines)
    assert "recipe_ctc_dic_c2dh_hela_seed1.json" in text
    assert "`python benchmarks/reproduce.py ctc_dic_c2dh_hela --loss discriminative --max-time 720 --seed {k}`" in text


def test_render_floor_check_counts_every_seed_and_metric(tmp_path):
    m = lambda s, a, c: {"SBD": s, "AP@0.5 (TP/(TP+FP+FN))": a, "AP@0.5": a, "COCO AP": c}  # noqa: E731
    machine = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2}
    runs = {}
    for k in (0, 1, 2):
        r = _defaults_result("bbbc010", k, 0.8, 0.7)
        r["rows"] = {"harmonic, predicted foreground": m(0.8, 0.7, 0.5 - 0.1 * k),
                     "floor: connected components of the predicted foreground": m(0.7, 0.5, 0.4)}
        runs[f"defaults_bbbc010_seed{k}.json"] = r
    nuclei = {"machine": machine, "seeds": [{"new": m(0.75, 0.7, 0.45), "floor": m(0.75, 0.7, 0.46),
                                              "floor_scored": m(0.75, 0.7, 0.45)}]}
    demo = {"runs": [{"harmonic": m(0.72, 0.49, 0.35), "floor (connected components of the mask)": m(0.69, 0.44, 0.26)}]}
    page = _fake_project(tmp_path, {**runs, "recovery_demo.json": nuclei, "demo_seeds.json": demo})
    page.write_text("<!-- table:floor_check -->\n<!-- /table:floor_check -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    rows = {r.split(" | ")[0][2:]: r.split(" | ") for r in page.read_text(encoding="utf-8").splitlines()
            if r.startswith("| ") and not r.startswith("| data")}
    worms = rows["BBBC010 worms"]
    assert worms[1:6] == ["3", "+0.100 / +0.100 / +0.100", "+0.200 / +0.200 / +0.200",
                          "+0.100 / +0.000 / -0.100", "8 of 9 |"]
    assert rows["nuclei sample"][4:6] == ["-0.010", "2 of 3 |"]  # the floor ranked in raster order
    assert rows["nuclei sample, the floor's instances scored as the library scores its own"][5] == "3 of 3 |"
    assert rows["demo (worms, mask given)"][5] == "3 of 3 |"
    assert "defaults_bbbc010_seed2.json" in page.read_text(encoding="utf-8")


def _run_py_result(config, dataset, seed, row, sbd, fit=700.0, **extra):
    """A result file as benchmarks/run.py writes it."""
    metrics = lambda s: {"SBD": s, "AP@0.5 (TP/(TP+FP+FN))": s - 0.1, "COCO AP": s - 0.3}  # noqa: E731
    return {**dict(config=config, method="harmonic", dataset=dataset, seed=seed, settings={},
                   command=f"python benchmarks/run.py {config} {dataset} --seeds {seed}", fit_seconds=fit,
                   machine={"cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2},
                   rows={row: metrics(sbd), "floor: connected components of the predicted foreground": metrics(0.5)}),
            **extra}


def test_render_summary_from_the_runner_with_recipe_cellpose_and_oracle(tmp_path):
    harmonic = "harmonic, predicted foreground"
    files = {}
    for k in (0, 1):
        files[f"defaults_bbbc010_seed{k}.json"] = _run_py_result(
            "defaults", "bbbc010", k, harmonic, 0.80 + 0.02 * k, params=dict(max_time=720, num_threads=2, random_state=k))
        files[f"recipe_bbbc010_seed{k}.json"] = _run_py_result("recipe", "bbbc010", k, harmonic, 0.85, max_time=720)
        files[f"cellpose_bbbc010_seed{k}.json"] = _run_py_result(
            "cellpose", "bbbc010", k, "Cellpose 3.1 from scratch", 0.70, fit=750.0, budget_minutes=10,
            train_seconds=480.0 + 60 * k)  # the label gives the minutes trained, not the budget
    files["oracle_bbbc010_seed0.json"] = _run_py_result(
        "oracle", "bbbc010", 0, "oracle: mean shift of the target embeddings", 0.95)
    page = _fake_project(tmp_path, files)
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    row = next(i for i, l in enumerate(lines) if l.startswith("| BBBC010 worms"))
    names = [l.split(" | ")[1] for l in lines[row:row + 6]]
    assert names == ["defaults, `max_time=720, num_threads=2`", "hand recipe, `max_time=720`",
                     "Cellpose 3.1 from scratch, 8.5 min of training",
                     "floor: connected components of the predicted foreground",
                     "oracle: the truth's exact embeddings clustered over the true foreground (a perfect network)",
                     "paper (Table 3)"]
    assert lines[row].split(" | ")[2:4] == ["2", "0.810 ± 0.014"]
    assert lines[row + 2].split(" | ")[3] == "0.700 ± 0.000" and lines[row + 2].endswith("| 750 |")
    assert lines[row + 4].split(" | ")[2:4] == ["1", "0.950"] and lines[row + 4].endswith("| – |")
    # the commands are the runner's, without the data set and seed of each file
    for command in ("`python benchmarks/run.py recipe bbbc010`",
                    "`python benchmarks/run.py cellpose bbbc010`", "`python benchmarks/run.py oracle bbbc010`",
                    "`python benchmarks/run.py defaults bbbc010`"):
        assert command in text, command
    assert "oracle_bbbc010_seed0.json" in text and "cellpose_bbbc010_seed1.json" in text
    # the README's short summary: the defaults, Cellpose, the floor and the paper
    page.write_text("<!-- table:defaults:short -->\n<!-- /table:defaults:short -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    lines = page.read_text(encoding="utf-8").splitlines()
    row = next(i for i, l in enumerate(lines) if l.startswith("| BBBC010 worms"))
    assert [l.split(" | ")[1] for l in lines[row:row + 4]] == [
        "defaults, `max_time=720, num_threads=2`", "Cellpose 3.1 from scratch, 8.5 min of training",
        "floor: connected components of the predicted foreground", "paper (Table 3)"]
    assert "recipe_bbbc010" not in "\n".join(lines) and "oracle_bbbc010" not in "\n".join(lines)


def test_render_names_the_runner_and_the_earlier_script_for_a_mix_of_files(tmp_path):
    harmonic = "harmonic, predicted foreground"
    files = {"defaults_cvppp_a1_seed0.json": _defaults_result("cvppp_a1", 0, 0.85, 0.15, num_threads=2)}
    for ds in ("bbbc010", "ctc_dic_c2dh_hela"):
        files[f"defaults_{ds}_seed0.json"] = _run_py_result(
            "defaults", ds, 0, harmonic, 0.8, params=dict(max_time=720, num_threads=2, random_state=0))
    page = _fake_project(tmp_path, files)
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    assert ("written by `python benchmarks/run.py defaults bbbc010 ctc_dic_c2dh_hela`, "
            "`python benchmarks/defaults.py --threads 2`") in text
    files["defaults_cvppp_a1_seed0.json"] = _run_py_result(
        "defaults", "cvppp_a1", 0, harmonic, 0.8, params=dict(max_time=720, num_threads=2, random_state=0))
    page = _fake_project(tmp_path / "all", files)
    assert render.main([], root=tmp_path / "all") == 0
    assert "written by `python benchmarks/run.py defaults` (" in page.read_text(encoding="utf-8")


def test_render_ablation_puts_each_config_beside_the_reference(tmp_path):
    harmonic = "harmonic, predicted foreground"
    files = {}
    for k in (0, 1):
        files[f"defaults_bbbc010_seed{k}.json"] = _run_py_result("defaults", "bbbc010", k, harmonic, 0.80,
                                                                 settings={"label": "defaults"})
        files[f"loss_harmonic_bbbc010_seed{k}.json"] = _run_py_result(
            "loss_harmonic", "bbbc010", k, harmonic, 0.70 + 0.1 * k, settings={"label": "the paper's harmonic loss"})
    files["loss_harmonic_cvppp_a1_seed0.json"] = _run_py_result(  # one of the config's seeds run
        "loss_harmonic", "cvppp_a1", 0, harmonic, 0.60, settings={"label": "the paper's harmonic loss",
                                                                  "seeds": [0, 1, 2]})
    files["defaults_ctc_dic_c2dh_hela_seed0.json"] = _run_py_result(  # the reference alone: no row
        "defaults", "ctc_dic_c2dh_hela", 0, harmonic, 0.90, settings={"label": "defaults"})
    page = _fake_project(tmp_path, files)
    page.write_text("<!-- table:ablation:loss -->\n<!-- /table:ablation:loss -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    lines = page.read_text(encoding="utf-8").splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| ") and not line.startswith("| data set")]
    assert [r[:4] for r in rows] == [["| CVPPP A1 leaves", "the paper's harmonic loss", "1", "0.600"],
                                     ["| BBBC010 worms", "defaults", "2", "0.800 ± 0.000"],
                                     ["| ", "the paper's harmonic loss", "2", "0.750 ± 0.071"]]
    text = "\n".join(lines)
    assert "`python benchmarks/run.py loss_harmonic cvppp_a1 --seeds 0`" in text  # not the config's three seeds
    assert "`python benchmarks/run.py loss_harmonic bbbc010`" in text and "loss_harmonic_bbbc010_seed1.json" in text
    # the decoder's and the guides' tables name what their reference (the harmonic loss's runs) compares
    (tmp_path / "benchmarks" / "results" / "guides_random_cvppp_a1_seed0.json").write_text(json.dumps(_run_py_result(
        "guides_random", "cvppp_a1", 0, harmonic, 0.50, settings={"label": "fixed random guides"})), encoding="utf-8")
    page.write_text("<!-- table:ablation:guides -->\n<!-- /table:ablation:guides -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    rows = [line.split(" | ")[:2] for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    assert rows[1:] == [["| CVPPP A1 leaves", "harmonic loss, fitted guides"], ["| ", "fixed random guides"]]
    page.write_text("<!-- table:ablation:nothing -->\n<!-- /table:ablation:nothing -->\n", encoding="utf-8")
    assert render.main(["--check"], root=tmp_path) == 2


@pytest.mark.parametrize("retune", [True, False])
def test_render_recluster_names_what_was_clustered(tmp_path, retune):
    m = lambda s: {"SBD": s, "AP@0.5 (TP/(TP+FP+FN))": s, "COCO AP": s}  # noqa: E731
    recluster = {"command": "python benchmarks/recluster.py --models DIR" + (" --retune" if retune else ""),
                 "machine": {"cpu_count": 2}, "runs": [{"dataset": "bbbc010", "seed": 0, "rows": {"predicted": {
                     "current": m(0.9), "recorded": m(0.8), "mean_shift": m(0.7), "floor": m(0.6)}}}]}
    page = _fake_project(tmp_path, {"recluster_defaults.json": recluster})
    page.write_text("<!-- table:recluster -->\n<!-- /table:recluster -->\n", encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    rows = [line.split(" | ")[1:4] for line in page.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| data set")]
    first = ["current library, tuned again", "1", "0.900"] if retune else ["the library's recovery, as fitted", "1", "0.900"]
    assert rows[0] == first
    assert (["as recorded when trained", "1", "0.800"] in rows) == retune
    assert rows[-2:] == [["mean shift of all foreground pixels", "1", "0.700"], ["floor: connected components", "1", "0.600"]]


def test_render_uses_reclustered_scores_only_for_the_network_they_came_from(tmp_path):
    m = lambda s: {"SBD": s, "AP@0.5 (TP/(TP+FP+FN))": s, "COCO AP": s}  # noqa: E731
    old, new = _defaults_result("bbbc010", 0, 0.80, 0.70), _defaults_result("bbbc010", 0, 0.60, 0.70)
    recluster = {"command": "python benchmarks/recluster.py --models DIR", "runs": [
        {"dataset": "bbbc010", "seed": 0, "rows": {"predicted": {
            "current": m(0.9), "recorded": old["rows"]["harmonic, predicted foreground"], "floor": m(0.7)}}}]}
    page = _fake_project(tmp_path, {"defaults_bbbc010_seed0.json": old, "recluster_defaults.json": recluster})
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    assert "| 0 | 0.900 |" in text and "recluster.py" in text  # re-clustered: the same network
    (tmp_path / "benchmarks/results/defaults_bbbc010_seed0.json").write_text(json.dumps(new), encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    assert "| 0 | 0.600 |" in text and "recluster.py" not in text  # another network: its own scores


def test_render_check_fails_on_a_figure_edited_by_hand(tmp_path, capsys):
    page = _fake_project(tmp_path, {"defaults_bbbc010_seed0.json": _defaults_result("bbbc010", 0, 0.80, 0.70)})
    assert render.main([], root=tmp_path) == 0
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("0.800", "0.810"), encoding="utf-8")
    assert render.main(["--check"], root=tmp_path) == 1
    assert "docs/page.md" in capsys.readouterr().err
    assert page.read_text(encoding="utf-8") != text  # --check writes nothing
    # a result file that changes makes the page stale too
    (tmp_path / "benchmarks/results/defaults_bbbc010_seed1.json").write_text(
        json.dumps(_defaults_result("bbbc010", 1, 0.7, 0.7)), encoding="utf-8")
    assert render.main([], root=tmp_path) == 0
    assert render.main(["--check"], root=tmp_path) == 0


def test_render_without_defaults_files_says_what_writes_them(tmp_path):
    page = _fake_project(tmp_path, {})
    assert render.main([], root=tmp_path) == 0
    assert "No result files yet: `python benchmarks/run.py defaults`" in page.read_text(encoding="utf-8")


def test_render_refuses_unknown_tables_and_unclosed_markers(tmp_path, capsys):
    page = _fake_project(tmp_path, {})
    page.write_text("<!-- table:nonsense -->\n<!-- /table:nonsense -->\n", encoding="utf-8")
    assert render.main(["--check"], root=tmp_path) == 2
    assert "unknown table 'nonsense'" in capsys.readouterr().err
    page.write_text("<!-- table:defaults -->\nno closing marker\n", encoding="utf-8")
    assert render.main(["--check"], root=tmp_path) == 2
    assert "without their closing marker" in capsys.readouterr().err
    page.write_text("<!-- table:demo -->\n<!-- /table:demo -->\n", encoding="utf-8")
    assert render.main(["--check"], root=tmp_path) == 2  # demo_seeds.json is missing
    assert "demo_seeds.json is missing" in capsys.readouterr().err


def test_render_command_line_check_passes():
    proc = subprocess.run([sys.executable, str(DOCS / "render.py"), "--check"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
