"""Errors: unknown ops, newer format versions, corrupt or hostile files, wrong inputs, unexportable functions."""

import os

import pytest

import danlu as dl
import danlu.export as export
from danlu.core.errors import DTypeError, ShapeError
from danlu.io import SerializationError

from .helpers import MLP, read_doc, roundtrip, write_doc


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "mlp.dlx"
    export.save(MLP(), (dl.randn(4, 3),), path, dynamic={0: {0: "batch"}})
    return path


def edited(path, edit):
    doc, arrays = read_doc(path)
    edit(doc, arrays)
    write_doc(path, doc, arrays)
    return path


# -- the artifact ------------------------------------------------------------------------------------------

def test_unknown_op_names_the_op_and_what_to_do(artifact):
    edited(artifact, lambda d, a: d["graph"]["nodes"][1].update(op="fancy_attention"))
    with pytest.raises(export.UnknownOpError, match=r"uses op 'fancy_attention' .*does not register; it was exported "
                                                    r"by danlu .*upgrade danlu.*or re-export"):
        export.load(artifact)


def test_newer_format_version_says_upgrade(artifact):
    edited(artifact, lambda d, a: d.update(version=export.FORMAT_VERSION + 1))
    with pytest.raises(export.ArtifactError, match=rf"format version {export.FORMAT_VERSION + 1} .*newer than version "
                                                   rf"{export.FORMAT_VERSION}.*upgrade danlu"):
        export.load(artifact)


def test_wrong_format_name(artifact):
    edited(artifact, lambda d, a: d.update(format="onnx"))
    with pytest.raises(export.ArtifactError, match="unknown artifact format 'onnx'"):
        export.load(artifact)


def test_truncated_file(artifact):
    data = artifact.read_bytes()
    artifact.write_bytes(data[:-7])
    with pytest.raises(SerializationError, match="truncated"):
        export.load(artifact)


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.dlx"
    path.write_bytes(os.urandom(64))
    with pytest.raises(SerializationError):
        export.load(path)


def test_corrupt_json_metadata(artifact):
    import json

    doc, arrays = read_doc(artifact)
    from danlu.io import files

    files.write(artifact, arrays, {"danlu.export": json.dumps(doc)[:-5]})
    with pytest.raises(export.ArtifactError, match="not valid JSON"):
        export.load(artifact)


@pytest.mark.parametrize("edit,match", [
    (lambda d, a: d["graph"]["nodes"][0]["outputs"][0].update(shape=["batch", 9]),
     r"graph.nodes\[0\].*matmul gives \['float32\[batch, 8\]'\].*records \['float32\[batch, 9\]'\]"),
    (lambda d, a: d["graph"]["nodes"][0]["outputs"][0].update(dtype="complex64"), r"unknown dtype 'complex64'"),
    (lambda d, a: d["graph"]["nodes"][0]["inputs"][0].update(ref=99), r"reference 99 names no value"),
    (lambda d, a: d["graph"]["constants"][0].update(key="nope"), r"holds no tensor 'nope'"),
    (lambda d, a: d["graph"]["constants"][0].update(shape=[1]), r"holds float32\[3, 8\]"),
    (lambda d, a: d["graph"].update(nodes={}), r"graph.nodes: expected a list"),
    (lambda d, a: d["graph"]["nodes"][0].update(attrs={"x": {"t": "pickle", "v": "..."}}), r"unknown tag 'pickle'"),
    (lambda d, a: d["graph"]["nodes"][0].update(attrs={"bogus": 1}), r"matmul.*does not fit this danlu.*bogus"),
    (lambda d, a: d.update(inputs=[{"name": "x", "shape": [3, 3], "dtype": "float32"}]), r"does not match the graph"),
    (lambda d, a: d["symbols"][0].update(example=-1), r"non-negative example size"),
    (lambda d, a: d.update(output_structure={"output": 5}), r"output index 5 out of range"),
    (lambda d, a: a.update(extra=a["w1"]), r"tensors that no constant names: \['extra'\]"),
    (lambda d, a: d.update(guards=[{"lhs": "batch", "cmp": "is", "rhs": "1", "holds": True}]), r"guards\[0\]"),
])
def test_corrupt_documents_fail_with_the_json_path(artifact, edit, match):
    edited(artifact, edit)
    with pytest.raises(export.ArtifactError, match=match):
        export.load(artifact)


@pytest.mark.parametrize("evil", [
    "__import__('os').system('touch PWNED')",
    "batch; import os",
    "(lambda: 1)()",
    "batch.__class__",
    "open('x')",
    "1 if batch else 2",
    "batch ** 99999999",
])
def test_size_expressions_are_parsed_never_evaluated(artifact, evil, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    edited(artifact, lambda d, a: d["graph"]["nodes"][0]["outputs"][0].update(shape=[evil, 8]))
    with pytest.raises(export.ArtifactError, match="bad size expression"):
        export.load(artifact)
    assert not (tmp_path / "PWNED").exists()


def test_attribute_names_must_be_identifiers(artifact):
    # attribute names become keyword arguments in generated code
    edited(artifact, lambda d, a: d["graph"]["nodes"][5].update(attrs={"dim=__import__('os'),x": 1}))
    with pytest.raises(export.ArtifactError, match="is not an identifier"):
        export.load(artifact)


def test_hostile_symbol_and_input_names_are_renamed_for_codegen(artifact):
    def edit(d, a):
        d["symbols"][0]["name"] = "float"  # a builtin the generated code uses (float('inf'))
        d["inputs"][0]["shape"][0] = d["graph"]["inputs"][0]["shape"][0] = "float"
        for n in d["graph"]["nodes"]:
            for o in n["outputs"]:
                o["shape"] = ["float" if s == "batch" else s for s in o["shape"]]
        for o in d["outputs"]:
            o["shape"] = ["float" if s == "batch" else s for s in o["shape"]]
        d["guards"] = []
        d["graph"]["inputs"][0]["name"] = "x); import os; (y"
    edited(artifact, edit)
    prog = export.load(artifact)
    assert prog.input_specs[0].shape == ("float", 3)
    assert prog(dl.randn(5, 3))["probs"].shape == (5, 2)


def test_not_an_artifact(tmp_path):
    path = tmp_path / "state.safetensors"
    dl.save({"w": dl.ones(2), "step": 1}, path)
    with pytest.raises(export.ArtifactError, match="written by danlu.save; load it with danlu.load"):
        export.load(path)
    with pytest.raises(FileNotFoundError):
        export.load(tmp_path / "missing.dlx")
    with pytest.raises(IsADirectoryError):
        export.load(tmp_path)


# -- calling the loaded program ------------------------------------------------------------------------------

def test_wrong_inputs(artifact):
    prog = export.load(artifact)
    with pytest.raises(DTypeError, match=r"input 'x' must be float32 .*got float64\[4, 3\]; convert it with "
                                         r"\.to\(danlu.float32\)"):
        prog(dl.randn(4, 3, dtype=dl.float64))
    with pytest.raises(ShapeError, match=r"input 'x' must have 2 dimension\(s\) \(x: float32\[batch, 3\]\), got "
                                         r"float32\[4\]"):
        prog(dl.randn(4))
    with pytest.raises(ShapeError, match=r"input 'x' must have size 3 in dimension 1"):
        prog(dl.randn(4, 5))
    with pytest.raises(TypeError, match=r"takes 1 input\(s\) \(x\) but 2 were given"):
        prog(dl.randn(4, 3), dl.randn(4, 3))
    with pytest.raises(TypeError, match=r"missing input\(s\) \['x'\]"):
        prog()
    with pytest.raises(TypeError, match="no input named 'y'"):
        prog(y=dl.randn(4, 3))
    with pytest.raises(TypeError, match="input 'x' must be a danlu Tensor, got ndarray"):
        prog(dl.randn(4, 3).numpy())


def test_loaded_program_refuses_to_be_traced(artifact):
    prog = export.load(artifact)
    f = dl.compile(lambda x: prog(x)["probs"], warmup=0)
    with pytest.raises(TypeError, match="traced tensor"):
        f(dl.randn(4, 3))


# -- saving ------------------------------------------------------------------------------------------------

def test_save_argument_errors(tmp_path):
    x = dl.randn(2)
    with pytest.raises(TypeError, match="example input 1 is a int"):
        export.save(lambda a, b: a, (x, 3), tmp_path / "a.dlx")
    with pytest.raises(ValueError, match="example inputs 0 and 1 are the same tensor"):
        export.save(lambda a, b: a + b, (x, x), tmp_path / "a.dlx")
    with pytest.raises(ValueError, match="2 input_names for 1 example inputs"):
        export.save(lambda a: a, (x,), tmp_path / "a.dlx", input_names=["a", "b"])
    with pytest.raises(ValueError, match="input names must be distinct"):
        export.save(lambda a, b: a + b, (x, dl.randn(2)), tmp_path / "a.dlx", input_names=["a", "a"])
    with pytest.raises(ValueError, match="1 output_names for 2 tensor outputs"):
        export.save(lambda a: (a, a * 2), (x,), tmp_path / "a.dlx", output_names=["o"])
    with pytest.raises(TypeError, match="expected a compiled function, a Module or a function"):
        export.save(3, (x,), tmp_path / "a.dlx")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        export.save(lambda a: a, (x,), tmp_path)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_unstorable_output_values(tmp_path):
    with pytest.raises(export.ExportError, match="cannot be stored"):
        export.save(lambda a: (a, object()), (dl.randn(2),), tmp_path / "a.dlx")


def test_data_dependent_functions_cannot_be_exported(tmp_path):
    with pytest.raises(dl.GraphBreakError):
        export.save(lambda a: a[a > 0], (dl.randn(5),), tmp_path / "a.dlx")
    assert not (tmp_path / "a.dlx").exists()


def test_same_artifact_loads_twice_independently(artifact):
    a, b = export.load(artifact), export.load(artifact)
    x = dl.randn(3, 3)
    assert (a(x)["probs"] == b(x)["probs"]).all()
    roundtrip(lambda t: t * 2, (dl.ones(1),), artifact)  # overwriting the file leaves loaded programs alone
    assert (a(x)["probs"] == b(x)["probs"]).all()


def test_symbols_a_graph_cannot_read_from_its_inputs_are_refused():
    from danlu.core.registry import get_op
    from danlu.export.schema import check_symbols_defined
    from danlu.graph import Graph
    from danlu.graph.symbolic import SymInt

    g = Graph("body")
    x = g.add_input((6,), dl.float32.np, "x")
    s0 = SymInt(2, "s0")
    g.outputs = list(g.add_node(get_op("reshape"), (x,), {"shape": (s0, 3)}, [dl.core.registry.AVal((s0, 3),
                                                                                                        dl.float32)]))
    with pytest.raises(export.ExportError, match=r"node 0 \(reshape\) reads size symbol\(s\) \['s0'\] that no input"):
        check_symbols_defined(g, "the body")
    g.inputs[0].shape = (s0 * 3,)  # an expression is not a place to read a symbol from
    with pytest.raises(export.ExportError, match="no input"):
        check_symbols_defined(g, "the body")
    g.inputs[0].shape = (s0, 3)
    check_symbols_defined(g, "the body")
