"""``report.json`` (``CompressionReport``): everything one compression run found and wrote."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import REPORT_SCHEMA_VERSION, ErrorKind, Method, Settler, Status, Strict


class ModelInfo(Strict):
    """The analysed network as loaded."""

    name: str
    path: str
    sha256: str = Field(description="sha256 of the model file's bytes (or of the float64 weights for in-memory networks)")
    format: str = Field(description="torch | safetensors | onnx | sequential | network (an in-memory Network, since 1.3)")
    dtype: str
    input_dim: int
    hidden_widths: list[int]
    output_dim: int
    activation_assumed: bool | None = Field(
        None, description="true: a state dict (torch, safetensors) records no activations and ReLU was assumed "
        "between its Linear layers; false: the activations were read and checked (ONNX, nn.Sequential) (since 1.3)")
    input_shape: list[int] | None = Field(
        None, description="(C, H, W) of one input of a convolutional network; input_dim is their product and the "
        "domain is a box over the flattened (channel-major) input (since 1.4)")


class BoxRecord(Strict):
    lower: list[float]
    upper: list[float]


class DomainRecord(Strict):
    """The input domain the results hold on: a union of boxes."""

    kind: Literal["box", "data", "linf-balls"]
    source: str = Field(description="the CLI flags or file the domain came from")
    n_boxes: int
    margin: float | None = None
    epsilon: float | None = None
    union_semantics: str
    scalar_lower: float | None = Field(None, description="set when every feature of every box has the same lower bound")
    scalar_upper: float | None = None
    boxes: list[BoxRecord] = Field(description="every box; at most 16 are listed in full (see n_boxes)")


class LayerCompression(Strict):
    """What compression did to one hidden layer (since 1.2)."""

    removed_inactive: int = Field(description="stably inactive neurons removed")
    folded_active: int = Field(description="linearly dependent stably active neurons folded into the next layer")
    skipped_folds: int = Field(description="dependent stably active neurons kept: the fold's residual exceeded "
                               "fold_atol, or the folds moved the outputs past verification's tolerance")
    merged: bool = Field(description="every remaining neuron was stably active: the layer was merged into the next")
    removed_unused: int = Field(0, description="neurons removed because nothing reads them: every outgoing weight "
                                "is zero (pruned, or the layers after them were removed), whatever their state "
                                "(since 1.12)")


class UndecidedNeuron(Strict):
    """A neuron left undecided (since 1.5): the interval its pre-activation is proved to stay in, and the sign
    question still open, so a reader sees how far it is from a verdict."""

    neuron: int
    lower: float = Field(description="proved: g(x) >= lower for every x in the domain (float64, rounding guard "
                         "applied; from bound propagation, tightened by the MILPs' and branch and bound's bounds)")
    upper: float = Field(description="proved: g(x) <= upper for every x in the domain")
    open: Literal["positive", "negative", "both"] = Field(
        description="the sign neither witnessed nor proved impossible: 'positive' — can g be > 0? (no: stably "
        "inactive); 'negative' — can g be < 0? (no: stably active); 'both' — neither sign witnessed")
    smallest_found: float | None = Field(
        None, description="the smallest g at the inputs the engine evaluated in float64 (uniform samples, box "
        "corners, data rows, the gradient search's points, solver and branch-and-bound witnesses): an inner "
        "estimate of min g, not a bound; null when none was evaluated (since 1.8)")
    largest_found: float | None = Field(
        None, description="the largest g at those inputs: an inner estimate of max g (for an open 'positive' "
        "question, how far below 0 the best input got), not a bound; null when none was evaluated (since 1.8)")


class IfUndecidedSettled(Strict):
    """The compressed model a run would have written had every undecided neuron been settled the way its open
    question asks (since 1.9): the most that settling them, e.g. by a longer run, could remove. The compression
    removes and folds at least as much with more stable neurons, so a longer run reaches at most this."""

    neurons_after: int
    parameters_after: int
    hidden_widths_after: list[int]


ChannelState = Literal["inactive_everywhere", "active_everywhere", "mixed", "undecided"]


class ChannelReport(Strict):
    """One output channel of a convolution layer: its neurons (one per position) by state (since 1.4)."""

    channel: int = Field(description="0-based channel index in the original layer")
    state: ChannelState = Field(
        description="inactive_everywhere: stably inactive at every position (removable); active_everywhere: stably "
        "active at every position (kept: folding would change the layer type); undecided: some position undecided; "
        "mixed: every position decided, but not all the same stable state")
    stably_inactive: int = Field(description="positions where the channel is stably inactive")
    stably_active: int = Field(description="positions where the channel is stably active")
    unstable: int = Field(description="positions where the channel is unstable")
    undecided: int = Field(description="positions left undecided")
    removed: bool = Field(description="the channel was deleted (its filter, bias and the next layer's input slice)")


class ConvLayerReport(Strict):
    """A hidden convolution layer (Conv2d, held as its dense unrolled matrix) and its channels (since 1.4)."""

    in_shape: list[int] = Field(description="(C, H, W) of the layer's input in the original network")
    out_shape: list[int] = Field(description="(C, H, W) of the layer's output in the original network")
    kernel_size: list[int]
    stride: list[int]
    padding: list[int]
    channels: list[ChannelReport]
    channels_removed: list[int] = Field(description="channels deleted, 0-based in the original layer")
    channels_after: int = Field(description="output channels of the compressed layer")
    parameters_before: int = Field(description="kernel and bias entries of the original convolution")
    parameters_after: int = Field(description="kernel and bias entries of the compressed convolution (its input "
                                  "channels shrink too when the layer before lost channels)")


class LayerReport(Strict):
    """One hidden layer of the *original* network, 0-based; neuron indices are 0-based."""

    index: int
    width: int
    stably_active: list[int]
    stably_inactive: list[int]
    unstable: list[int]
    undecided: list[int]
    settled_by: dict[Settler, list[int]] = Field(
        default_factory=dict, description="which step settled each stable or unstable neuron"
    )
    undecided_bounds: list[UndecidedNeuron] = Field(
        default_factory=list, description="for each undecided neuron, its proved interval and open sign (since 1.5)")
    compression: LayerCompression | None = Field(None, description="what compression did to the layer (since 1.2)")
    conv: ConvLayerReport | None = Field(
        None, description="set for a convolution layer: per-channel states and what channel removal did; its neurons "
        "are indexed channel-major, (channel, y, x) → channel * out_h * out_w + y * out_w + x (since 1.4)")


class VerificationReport(Strict):
    """Original vs compressed network on sampled inputs, float64."""

    n_inputs: int
    max_abs_error: float
    max_rel_error: float = Field(description="max |y - y'| / (1 + |y|) over inputs and outputs")
    tolerance: float = Field(description="passes when every |y - y'| <= tolerance * (1 + |y|)")
    passed: bool
    saved_dtype: str
    max_abs_error_saved_dtype: float | None = Field(
        None, description="the same comparison after casting the compressed weights to the saved dtype"
    )
    n_samples: int | None = Field(
        None, description="uniform draws in the domain asked for (--verify-samples; default 100000), counted in "
        "n_inputs where drawn; none are drawn when identical (since 1.3)")
    n_saved_dtype_inputs: int | None = Field(
        None, description="inputs of the saved-dtype comparison: the first 16384 draws, the corners and the "
        "witnesses/data rows (since 1.3); 0 when rounding to the saved dtype changes no weight, so that the "
        "error is 0 by construction (since 1.7)")
    first_layer_shared: bool | None = Field(
        None, description="the compressed first layer is bitwise a subset of the original's rows, so one product "
        "served both networks (since 1.3)")
    identical: bool | None = Field(
        None, description="the compressed network has the original's layers bitwise (nothing was removed, folded "
        "or merged): their outputs are equal by construction, so of the n_samples uniform draws only the saved-dtype "
        "comparison's (at most 16384) were made; n_inputs counts what was evaluated (since 1.7)")


class SolverStats(Strict):
    """SCIP work over the whole analysis (per-neuron solves and the single MILP together)."""

    solves: int = 0
    nodes: int = 0
    lp_iterations: int = 0
    seconds: float = 0.0
    solutions_harvested: int = Field(0, description="single MILP: candidate solutions evaluated in float64 (since 1.1)")
    lp_points_harvested: int = Field(0, description="single MILP: LP / heuristic points evaluated in float64 (since 1.1)")
    states_fixed: int = Field(0, description="single MILP: neuron states removed from the objective once seen (since 1.1)")
    open_states: int = Field(0, description="single MILP: neuron states it started with (since 1.1)")
    single_milp_finished: bool | None = Field(None, description="single MILP: its dual bound proved every open state impossible (since 1.1)")
    dual_trace: list[tuple[float, float]] = Field(
        default_factory=list, description="single MILP: (seconds, dual bound) pairs, thinned (since 1.1)"
    )


class BabStats(Strict):
    """Branch and bound on ReLU splits over the whole analysis (since 1.2): one run per open sign question and
    round; a question that a round's limit stops is asked again in the next round (resumed where it stopped),
    so it counts once per round, and questions = proved + witnessed + undecided."""

    questions: int = Field(0, description="sign questions given to branch and bound, once per round asked")
    proved: int = Field(0, description="settled by a float64-checked bound: the sign cannot occur")
    witnessed: int = Field(0, description="settled by a witness input its search found")
    undecided: int = Field(0, description="runs left open (the round's limit or the time limit ran out)")
    domains: int = Field(0, description="branch-and-bound domains bounded, over all questions")
    seconds: float = Field(0.0, description="wall seconds of all questions (in parallel: their sum)")
    device: str | None = Field(None, description="where the batched bounds ran: cpu or cuda")


class Tolerances(Strict):
    """Every numerical threshold that a decision depends on."""

    witness_margin: float = Field(description="a witness shows a sign only if sign * g(x) > witness_margin (float64)")
    bound_margin: float = Field(description="a bound proves stability only if U <= -bound_margin or L >= bound_margin")
    milp_margin: float = Field(description="a MILP proves stability only if its dual bound is beyond -milp_margin")
    milp_relative_margin: float | None = Field(
        None, description="... and beyond -milp_relative_margin * size, size = |b| + sum |w| max|input| of the "
        "neuron's row over its input bounds; absent: 0 (since 1.10)")
    milp_aggressive_relative_margin: float | None = Field(
        None, description="the relative factor instead of milp_relative_margin in solves whose SCIP separators are "
        "aggressive (auto's free sign solves on a spare thread) (since 1.11)")
    scip_feastol: float
    scip_dualfeastol: float
    scip_bound_pad: float | None = Field(
        None, description="bounds a MILP states on a pre-activation variable are widened outward by scip_bound_pad * "
        "(1 + |bound|); absent: 0 (since 1.13)")
    rank_rtol: float = Field(description="singular values below rank_rtol * s_max count as zero")
    fold_atol: float = Field(description="a fold is applied only if max |W_D - K W_I| <= fold_atol * (1 + max |W|)")
    rounding_widening: float | None = Field(
        None, description="every computed bound is widened outward by rounding_widening * (1 + |bound| + magnitude) "
        "(since 1.2)")
    sign_primal_threshold: float | None = Field(
        None, description="a MILP solution is a witness candidate only where sign * g >= this; the single MILP's "
        "witness branch demands it too (since 1.2)")
    verify_tolerance: float | None = Field(
        None, description="verification passes when every |y - y'| <= verify_tolerance * (1 + |y|) (since 1.2)")


class Versions(Strict):
    exactcompress: str
    python: str
    numpy: str
    torch: str
    pyscipopt: str
    scip: str


class FileDigest(Strict):
    """Size and content hash of one output file, as written."""

    bytes: int = Field(ge=0)
    sha256: str


class Outputs(Strict):
    compressed: list[str] = Field(description="compressed model file names in the output directory")
    architecture: str | None = Field(
        None, description="the architecture file of a compressed CNN's state dict (compressed.arch.json), needed to "
        "load compressed.pt / compressed.safetensors (since 1.4)")
    witnesses: str | None = None
    report_md: str | None = None
    report_html: str | None = None
    files: dict[str, FileDigest] = Field(
        default_factory=dict, description="the compressed models and witnesses.npz by name: size and sha256 as "
        "written; a zoo run reuses a committed report only while its files match (since 1.3)")


class CompressionReport(Strict):
    """Everything one ``exactcompress compress`` run found and wrote."""

    schema_version: str = REPORT_SCHEMA_VERSION
    model: ModelInfo | None = None
    model_path: str
    domain: DomainRecord | None = None
    method: Method
    status: Status
    error: str | None = Field(None, description="one-line reason when status is 'failed'")
    error_kind: ErrorKind | None = Field(
        None, description="why it failed: input (bad model, domain or data), solver (SCIP), soundness (a proof and "
        "a witness disagree: a bug), verification (outputs differ), internal (since 1.2)")
    time_limit_s: float | None = None
    policy: str | None = Field(None, description="what --method auto chose for this network and why (since 1.1); for milp, why its questions stayed undecided if SCIP failed (since 1.3)")
    time_limit_reached: bool = Field(False, description="some MILP was cut by --time-limit (its neurons are undecided)")
    workers: int = 1
    threads: int = Field(1, description="branch-and-bound questions answered at once in the run's own process, in "
                         "its rounds of long questions (since 1.6)")
    layers: list[LayerReport] = Field(default_factory=list)
    neurons_before: int = 0
    neurons_after: int = 0
    parameters_before: int = Field(0, description="weight and bias entries of the original network as read, counted as "
                                   "the compressed file is: batch norms folded into the layer before, a Linear after "
                                   "average pools on the pooled tensor, as the file holds it (since 1.14; before, "
                                   "composed with the pools on the un-pooled tensor), a layer saved without a bias "
                                   "with one zero bias per neuron")
    parameters_after: int = Field(0, description="weight and bias entries of the compressed network, as written (a "
                                  "Linear after pools that no written pool computes is written composed with them, on "
                                  "the un-pooled tensor, and can hold more entries than the original's)")
    hidden_widths_after: list[int] = Field(default_factory=list)
    if_undecided_settled: IfUndecidedSettled | None = Field(
        None, description="for a run with undecided neurons: the compressed model had each been proved stable the "
        "way its open question asks ('positive' or 'both': stably inactive; 'negative': stably active); equal to "
        "this run's when settling them cannot shrink it (since 1.9)")
    verification: VerificationReport | None = None
    seconds: dict[str, float] = Field(default_factory=dict, description="wall seconds per stage and 'total'")
    milp: SolverStats = Field(default_factory=SolverStats)
    bab: BabStats = Field(default_factory=BabStats, description="branch and bound on ReLU splits (since 1.2)")
    tolerances: Tolerances | None = None
    versions: Versions
    outputs: Outputs | None = None

    def counts(self) -> dict[str, int]:
        """Neurons per state over all hidden layers."""
        keys = ("stably_active", "stably_inactive", "unstable", "undecided")
        return {key: sum(len(getattr(layer, key)) for layer in self.layers) for key in keys}
