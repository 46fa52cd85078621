import glob
import os

import pytest
import yaml

from conftest import ROOT
from zscrgan import config as config_lib
from zscrgan.config import ConfigError, load_config
from zscrgan.files import write_yaml


def test_defaults_are_the_reference_flags():
    d = config_lib.defaults()
    expected = {"batch_size": 32, "gf_dim": 2048, "df_dim": 1024, "embed_dim": 1024, "CSEM_lr": 0.002,
                "generator_lr": 0.0002, "discriminator_lr": 0.0002, "epochs": 5000,
                "kl_div_coefficient": 1.0, "mm_reg_coeff": 2.0, "z_dim": 256, "clip_val": 0.01,
                "e_steps": 100, "n_critic": 5, "m_steps": 100, "margin": 2.0, "top_k": 50}
    assert {k: d[k] for k in expected} == expected


def test_every_default_key_has_a_comment():
    with open(config_lib.DEFAULT_FILE) as f:
        lines = [l for l in f if l.strip() and not l.startswith("#")]
    assert lines and all("#" in l for l in lines)
    notes = config_lib.comments()
    assert list(notes) == list(config_lib.defaults()) and all(notes.values())


def test_comments_are_read_from_the_end_of_key_lines(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("# head: not a key\na: 1   # the a \nb: x#y  # B, 50% # more\nc: 2\n  d: 3  # nested\n")
    assert config_lib.comments(str(path)) == {"a": "the a", "b": "B, 50% # more"}


def test_flag_help_gives_type_comment_and_default():
    docs = config_lib.flag_help()
    assert docs["batch_size"] == ("INT", "B: rows per batch (at least 2: the wrong pair is the batch "
                                         "rolled by one) (default: 32)")
    assert docs["CSEM_lr"][0] == "FLOAT" and docs["CSEM_lr"][1].endswith("(default: 0.002)")
    assert docs["jit_compile"][0] == "BOOL" and docs["jit_compile"][1].endswith("(default: true)")
    assert docs["eval_ks"][0] == "LIST" and docs["eval_ks"][1].endswith("(default: 50)")
    assert docs["logs_dir"][0] == "DIR" and docs["dataset"] == ("NAME", "dataset folder name under "
                                                                         "datasets_dir (required)")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yml"))))
def test_every_shipped_config_loads_and_validates(path):
    name = os.path.splitext(os.path.basename(path))[0]
    cfg = load_config(dataset="X" if name == "default" else name)
    assert cfg.batch_size >= 2 and cfg.dataset


def test_layers_override_in_order(tmp_path):
    user = tmp_path / "sweep.yml"
    user.write_text("batch_size: 8\ngf_dim: 64\n")
    cfg = load_config(config_file=str(user), flags={"dataset": "X", "gf_dim": "16"})
    assert (cfg.batch_size, cfg.gf_dim, cfg.df_dim) == (8, 16, 1024)
    assert cfg.embed_dim == 1024 and cfg.gf_dim == 16  # attribute access: an EasyDict


def test_unknown_key_names_key_and_file(tmp_path):
    user = tmp_path / "bad.yml"
    user.write_text("batch_sise: 8\n")
    with pytest.raises(ConfigError, match=r"bad\.yml.*batch_sise"):
        load_config(config_file=str(user), flags={"dataset": "X"})


def test_wrong_type_names_key_and_file(tmp_path):
    user = tmp_path / "bad.yml"
    user.write_text("gf_dim: 2.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yml.*gf_dim.*int"):
        load_config(config_file=str(user), flags={"dataset": "X"})


def test_int_is_accepted_for_float_but_bool_is_not_an_int(tmp_path):
    user = tmp_path / "u.yml"
    user.write_text("clip_val: 1\n")
    assert load_config(config_file=str(user), flags={"dataset": "X"}).clip_val == 1.0
    user.write_text("batch_size: true\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(config_file=str(user), flags={"dataset": "X"})


@pytest.mark.parametrize("key, value", [
    ("batch_size", "1"), ("discriminator_lr", "-0.1"), ("generator_lr", "-1e-4"), ("CSEM_lr", "-2"),
    ("kl_div_coefficient", "-1"), ("mm_reg_coeff", "-0.5"), ("clip_val", "0"), ("clip_val", "-0.01"),
    ("epochs", "-1"), ("generator_lr", "nan"), ("clip_val", "inf"),
])
def test_out_of_range_values_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        load_config(flags={"dataset": "X", key: value})


def test_flags_are_parsed_strictly():
    assert load_config(flags={"dataset": "X", "eval_ks": "10,50", "jit_compile": "false"}).eval_ks == [10, 50]
    with pytest.raises(ConfigError, match="--z_dim"):
        load_config(flags={"dataset": "X", "z_dim": "many"})
    with pytest.raises(ConfigError, match="--nonsense"):
        load_config(flags={"dataset": "X", "nonsense": "1"})


def test_missing_dataset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="--dataset"):
        load_config()
    user = tmp_path / "broken.yml"
    user.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yml"):
        load_config(config_file=str(user), flags={"dataset": "X"})


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(flags={"dataset": "X", "seed": "7"})
    path = tmp_path / "config.yml"
    write_yaml(str(path), dict(cfg), "config")
    assert yaml.safe_load(path.read_text()) == dict(cfg)


@pytest.mark.parametrize("text,value", [("2", 2), ("3,5", [3, 5]), ("file", "file"), ("null", None)])
def test_val_classes_flag_takes_each_of_its_forms(text, value):
    cfg = load_config(flags={"dataset": "X", "val_classes": text})
    assert cfg.val_classes == value and type(cfg.val_classes) is type(value)


@pytest.mark.parametrize("text", ["2", "[3, 5]", "file", "null"])
def test_val_classes_in_a_file_takes_each_of_its_forms(tmp_path, text):
    user = tmp_path / "u.yml"
    user.write_text(f"val_classes: {text}\nselect: test\n")
    assert load_config(config_file=str(user), flags={"dataset": "X"}).val_classes == yaml.safe_load(text)


@pytest.mark.parametrize("overrides,words", [
    ({"val_classes": "two"}, "--val_classes: expected a number of classes"),
    ({"val_classes": True}, "key 'val_classes' must be null, a number"),
    ({"val_classes": 2.5}, "key 'val_classes' must be null, a number"),
    ({"val_classes": "files"}, "expected a number of classes"),
    ({"val_classes": "1"}, "val_classes = 1 is out of range"),
    ({"val_classes": "3,3"}, "at least 2 distinct class ids"),
    ({"select": "best"}, "select = 'best' must be one of test, val"),
    ({"select": "val"}, "select = val needs validation classes"),
    ({"patience": "-2"}, "patience = -2 is out of range"),
    ({"seeds": "0,1", "val_classes": "2"}, "give the validation classes as a list of ids or 'file'"),
    ({"seeds": "0,0"}, "key 'seeds' must be null or a list of distinct integers >= 0"),
    ({"seeds": "0,-1"}, "key 'seeds' must be null or a list of distinct integers >= 0"),
    ({"seeds": "0,x"}, "comma-separated integers"),
])
def test_bad_model_selection_values_are_refused(overrides, words):
    with pytest.raises(ConfigError, match=words):
        load_config(flags={"dataset": "X", **overrides})


def test_config_yml_leaves_out_opt_in_keys_at_their_off_value():
    saved = config_lib.to_save(load_config(flags={"dataset": "X"}))
    assert not {"val_classes", "select", "patience", "run_name", "threads", "seeds", "tf32"} & set(saved)
    saved = config_lib.to_save(load_config(flags={"dataset": "X", "val_classes": "3,5", "select": "val",
                                                  "patience": "20", "tf32": "true"}))
    assert (saved["val_classes"], saved["select"], saved["patience"], saved["tf32"]) == ([3, 5], "val", 20, True)
