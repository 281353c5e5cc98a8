"""``pinembed train`` (a CLIP model on image-text pairs, or fine-tuned on engagement pairs) and
``pinembed eval`` (retrieval quality against labels or engagement pairs). Their defaults are the
training configs' (``TrainConfig``, ``PairTrainConfig``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pinembed.cli.common import (
    FloatRange,
    IntRange,
    db_option,
    given,
    json_option,
    library_option,
    open_existing,
    storage_options,
)
from pinembed.cli.errors import handle_errors
from pinembed.cli.output import ProgressBar
from pinembed.training.engagement_pairs import read_pairs

if TYPE_CHECKING:
    from pinembed.training.engagement_train import PairTrainConfig
    from pinembed.training.train import TrainConfig


def _configs() -> tuple[type[TrainConfig], type[PairTrainConfig]]:
    """The library's training configs (imported when needed: the training modules load numpy, the
    embedders and the store, too slow for ``pinembed --help``)."""
    from pinembed.training.engagement_train import PairTrainConfig
    from pinembed.training.train import TrainConfig

    return TrainConfig, PairTrainConfig


def _pairs() -> type[PairTrainConfig]:
    return _configs()[1]


def _both(name: str, unit: str = "", form: Callable[[Any], str] = str) -> str:
    """The default of ``name`` for --data, and for --pairs when it differs: ``10; 12 with --pairs``."""
    data, pairs = (form(getattr(c, name)) for c in _configs())
    return data if data == pairs else f"{data}; {pairs}{unit} with --pairs"


def _short(x: float) -> str:
    """A small number as it is typed: 0.001 -> ``1e-3``."""
    mantissa, exp = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def _progress(as_json: bool, label: str) -> ProgressBar:
    return ProgressBar(enabled=not as_json and sys.stderr.isatty(), label=label)


@click.command()
@click.option("--data", default=None, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Folder of images with sidecar titles, videos with titles, idea pins with page texts.")
@click.option("--pairs", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Engagement pairs (CSV or Parquet, see `pinembed eval --help`) of pins in --db: fine-tune on "
                   "them instead of on --data.")
@db_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder to write the model to (open_clip_config.json + open_clip_model.safetensors).")
@library_option("--arch", library=lambda: _configs()[0].arch, show_default=True,
                help="open_clip architecture name or JSON config file.")
@click.option("--init", default=None, help="An open_clip model id to fine-tune instead of starting from random "
                                           "(with --pairs: the database's model when not given).")
@library_option("--epochs", shown=lambda: _both("epochs"), type=IntRange(1), help="[default: {default}]")
@library_option("--batch-size", shown=lambda: _both("batch_size", " pairs"), type=IntRange(2),
                help="[default: {default}]")
@library_option("--lr", shown=lambda: _both("lr", form=_short), type=FloatRange(0, min_open=True),
                help="[default: {default}]")
@library_option("--seed", library=lambda: _configs()[0].seed, shown=lambda: _both("seed"), show_default=True,
                type=int)
@library_option("--dtype", library=lambda: _configs()[0].dtype, shown=lambda: _both("dtype"), show_default=True,
                type=click.Choice(["fp32", "fp16"]),
                help="Precision of the saved weights (fp16 halves the file).")
@library_option("--holdout", library=lambda: _pairs().holdout, show_default=True,
                type=FloatRange(0, 1, min_open=True, max_open=True),
                help="--pairs: the latest share of pairs (by timestamp) held out for early stopping.")
@library_option("--patience", library=lambda: _pairs().patience, show_default=True, type=IntRange(1),
                help="--pairs: epochs without a held-out Recall@10 gain before stopping.")
@library_option("--text-weight", library=lambda: _pairs().text_weight, show_default=True, type=FloatRange(0),
                help="--pairs: weight of the image-text term on the pins' titles (keeps text search and what "
                     "pins show: related by content).")
@library_option("--train-blocks", library=lambda: _pairs().train_blocks, show_default=True, type=IntRange(0),
                help="--pairs: train only the image tower's last N blocks and its head (the frozen rest runs once "
                     "per pin); 0: the whole tower.")
@library_option("--anchor-weight", library=lambda: _pairs().anchor_weight, show_default=True, type=FloatRange(0),
                help="--pairs: weight of the drift term that keeps what the model saw before in place (no "
                     "forgetting): the --anchor-data images' vectors when given, else the pins'; 0: none.")
@click.option("--anchor-data", default=None, type=click.Path(exists=True, file_okay=False, path_type=str),
              help="--pairs: a folder of images (best: a few thousand of what the initial model was trained on; "
                   "256 a step, up to 5,000) whose vectors the anchor holds instead of the pins' (rehearsal), so "
                   "content elsewhere keeps its neighbours.")
@library_option("--negatives", library=lambda: _pairs().negatives, show_default=True, type=IntRange(0),
                help="--pairs: pins of the database outside the batch added as negatives each step (from the "
                     "training pairs' pins and up to 2,000 pins in no pair, which the held-out ranking includes "
                     "too); 0: in-batch negatives only.")
@library_option("--idea-text-weight", library=lambda: _pairs().idea_text_weight, show_default=True,
                type=FloatRange(0),
                help="--pairs: how idea pins mix their texts into their vectors; give what ingest used.")
@json_option
@handle_errors
def train(data: str | None, pairs: str | None, db: str, out: str, arch: str | None, init: str | None,
          epochs: int | None, batch_size: int | None, lr: float | None, seed: int | None, dtype: str | None,
          holdout: float | None, patience: int | None, text_weight: float | None, train_blocks: int | None,
          anchor_weight: float | None, anchor_data: str | None, negatives: int | None,
          idea_text_weight: float | None, as_json: bool) -> None:
    """Train (or fine-tune) a CLIP model: on image-text pairs from a folder (--data, open_clip's ClipLoss),
    or on engaged pin pairs of a database (--pairs --db: a symmetric InfoNCE over in-batch negatives and
    --negatives pins of the database on the image tower, early stopping on the held-out latest pairs'
    Recall@10)."""
    if (data is None) == (pairs is None):
        raise click.UsageError("give --data (image-text training) or --pairs with --db (engagement fine-tuning)")
    common = given(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, dtype=dtype)
    if pairs is not None:
        # heavy: numpy and the store
        from pinembed.training.engagement_train import format_result, train_on_pairs

        blocks = {} if train_blocks is None else {"train_blocks": train_blocks or None}  # 0: the whole tower
        pcfg = _pairs()(pairs=pairs, db=db, out=out, init=init, anchor_data=anchor_data,
                        storage_options=storage_options(), **common, **blocks,
                        **given(holdout=holdout, patience=patience, text_weight=text_weight,
                                anchor_weight=anchor_weight, negatives=negatives, idea_text_weight=idea_text_weight))
        with _progress(as_json, "fine-tuning") as progress:
            res = train_on_pairs(pcfg, (lambda step, total, loss: progress(step, total)) if progress else None)
        click.echo(json.dumps({k: v for k, v in vars(res).items() if k != "losses"}) if as_json else format_result(res))
        return
    from pinembed.training.train import train as run_train  # heavy: the embedders and the store

    cfg = _configs()[0](data=data, out=out, init=init, **common, **given(arch=arch))
    with _progress(as_json, "training") as progress:
        result = run_train(cfg, (lambda step, total, loss: progress(step, total)) if progress else None)
    if as_json:
        click.echo(json.dumps({k: v for k, v in vars(result).items() if k != "losses"}))
    else:
        click.echo(f"trained on {result.pairs} pairs, {result.steps} steps in {result.seconds:.0f}s: "
                   f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}\nmodel id: {result.model_id}")


@click.command(name="eval")
@db_option
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="CSV with columns pin_id, label and optionally text (a text query for the label).")
@click.option("--pairs", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Engagement pairs (CSV or Parquet): query_pin_id, engaged_pin_id, optional weight, timestamp, "
                   "action (save, click, closeup).")
@click.option("--candidates", "candidates_out", default=None, metavar="OUT",
              help="With --pairs: judge this candidate table (the OUT of `pinembed candidates`: a .parquet file, a "
                   "folder of parts, or table:NAME): the share of pairs whose "
                   "engaged pin is in the query's first 10/50/100 candidates, beside exact ranking's.")
@json_option
@handle_errors
def eval_(db: str, labels: str | None, pairs: str | None, candidates_out: str | None, as_json: bool) -> None:
    """Retrieval quality against labels or engagement pairs.

    --labels: text->pin and pin->pin recall@1/5/10, related precision@10, cross-kind precision@5
    (image->video, video->idea, idea->image) and hub metrics. A hit is a result with the query's label.
    Labels file: CSV with a header row and the columns pin_id and label, and optionally text (the text
    query for that label; the label when absent).

    --pairs: Pinterest's offline protocol. For each (query, engaged) pair, rank = 1 + the pins (all of
    them, exactly; the pair's own two left out) whose cosine to the query is at least the engaged pin's;
    Recall@1/10/100 and MRR, overall, by query kind -> engaged kind and by action; hubs. Pairs whose pins
    are not in the database are counted and left out.

    --pairs with --candidates TABLE: the candidate table's recall of the pairs at 10/50/100 (the engaged
    pin among the query pin's first K candidates), overall and by kind pair, beside the exact ranks'.
    """
    if (labels is None) == (pairs is None):
        raise click.UsageError("give --labels or --pairs (one of them)")
    if candidates_out is not None:
        if pairs is None:
            raise click.UsageError("--candidates is judged on --pairs")
        from pinembed.training import candidate_eval  # heavy: numpy, pyarrow and the store

        report = candidate_eval.evaluate_candidates(open_existing(db).store, read_pairs(pairs), candidates_out)
        click.echo(json.dumps(report) if as_json else candidate_eval.format_report(report))
        return
    if pairs is not None:
        # heavy: numpy and the store
        from pinembed.training.engagement_eval import evaluate_pairs, format_report

        report = evaluate_pairs(open_existing(db).store, read_pairs(pairs))
        click.echo(json.dumps(report) if as_json else format_report(report))
        return
    from pinembed.training.evaluate import evaluate  # heavy: numpy

    report = evaluate(open_existing(db), labels)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"pins {report['pins']}, labelled {report['labelled']} ({report['labels']} labels), "
               f"missing {report['missing']}")
    for name in ("text_to_pin", "pin_to_pin"):
        click.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in report[name].items()))
    for name, v in report["cross_kind"].items():
        click.echo(f"{name}: precision@5 {v['precision@5']} ({v['queries']} queries)")
    h = report["hubs"]
    click.echo(f"hubs: {h['share_over_1pct']:.1%} of pins in >1% of top-10 lists; p90 {h['p90']:.0f}, max {h['max']:.0f}")
