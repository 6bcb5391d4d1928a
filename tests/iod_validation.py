"""The IOD validator of PyPI's dicom-validator, offline: its JSON cache of the standard built from the
dicom-standard package's tables (innolitics' JSON of the DICOM standard, 2020), since the validator
otherwise downloads the standard's DocBook from dicom.nema.org on first use.

    python tests/iod_validation.py TARGET_DIR
    validate_iods --standard-path TARGET_DIR --edition local FILE...

Limits of the 2020 tables: attributes added since (SyntheticData (0008,001C)) are reported as unexpected;
enumerated values are not checked (the validator reads them from DocBook only); a macro's inclusion
condition is lost (the tables expand macros inline), and 1C/2C conditions the validator's parser cannot
read are treated as optional.
"""

import html
import json
import os
import re
import sys
from importlib.metadata import files
from pathlib import Path

import dicom_validator
from dicom_validator.spec_reader.condition import ConditionType
from dicom_validator.spec_reader.condition_parser import ConditionParser
from dicom_validator.spec_reader.serializer import DefinitionEncoder
from pydicom.datadict import DicomDictionary
from pydicom.uid import UID_dictionary

EDITION = "2020-dicom-standard"  # name of the edition directory in the cache


def _standard_dir() -> Path:
    # the wheel installs its tables as data files (<prefix>/standard/*.json)
    ciods = next(f for f in files("dicom-standard") if f.name == "ciods.json")
    return Path(ciods.locate()).parent


def _load(name: str) -> list[dict]:
    with open(_standard_dir() / f"{name}.json", encoding="utf8") as f:
        return json.load(f)


def _tag(tag_hex: str) -> str:
    """'0020000e' -> '(0020,000E)', '60xx0010' -> '(60xx,0010)'"""
    return f"({tag_hex[:4]},{tag_hex[4:]})".upper().replace("X", "x")


def _text(description: str | None) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", description or "")).split())


def _dictionary() -> dict:
    dictionary = {
        a["tag"].replace("X", "x"): {
            "name": a["name"],
            "vr": a["valueRepresentation"],
            "vm": a["valueMultiplicity"],
            "prop": "RET" if a["retired"] == "Y" else "",
        }
        for a in _load("attributes")
    }
    # add attributes newer than the 2020 tables from pydicom's dictionary
    for tag, (vr, vm, name, retired, _) in DicomDictionary.items():
        dictionary.setdefault(
            f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
            {"name": name, "vr": vr, "vm": vm, "prop": "RET" if retired else ""},
        )
    return dictionary


def _attributes(rows: list[dict], ref_prefix: str, dictionary: dict, parse) -> dict:
    """Nest the flat attribute rows (path 'module:seq:tag') into
    {ref: {tag: {"name", "type", "cond"?, "items"?: {...}}}}."""
    result = {}
    for row in rows:
        module_id, *path = row["path"].split(":")
        attributes = result.setdefault(ref_prefix + module_id, {})
        for seq in path[:-1]:
            attributes = attributes[_tag(seq)].setdefault("items", {})
        tag = _tag(path[-1])
        attr_type = row["type"] if row["type"] != "None" else "3"
        name = dictionary.get(tag, {}).get("name", tag)
        attribute = {"name": name, "type": attr_type}
        if attr_type in ("1C", "2C", "3"):
            cond = parse(_text(row["description"]))
            if cond.type != ConditionType.UserDefined:
                attribute["cond"] = cond
        attributes[tag] = attribute
    return result


def _usage(row: dict, ref: str, parse) -> dict:
    module = {"ref": ref, "use": row["usage"]}
    if row["conditionalStatement"]:
        module["use"] = f"{row['usage']} - {row['conditionalStatement']}"
        cond = parse(module["use"])
        if cond.type != ConditionType.UserDefined:
            module["cond"] = cond
    return module


def write_cache(target_dir: str | os.PathLike) -> Path:
    """Write the cache for edition EDITION under target_dir (the validator's
    --standard-path) and return the edition directory."""
    base = Path(target_dir)
    edition_dir = base / EDITION
    json_dir = edition_dir / "json"
    json_dir.mkdir(parents=True, exist_ok=True)

    dictionary = _dictionary()
    parser = ConditionParser(dictionary)  # the parser used for the DocBook files

    modules = _attributes(_load("module_to_attributes"), "", dictionary, parser.parse)
    # macro ids may equal module ids
    modules.update(_attributes(_load("macro_to_attributes"), "macro:", dictionary, parser.parse))
    # placeholders for the functional group macros of the enhanced IODs
    func_groups = modules.get("multi-frame-functional-groups", {})
    for seq in ("(5200,9229)", "(5200,9230)"):
        if seq in func_groups:
            items = func_groups[seq].setdefault("items", {})
            items["include"] = [{"ref": "FuncGroup"}]

    module_names = {m["id"]: m["name"] for m in _load("modules")}
    macro_names = {m["id"]: m["name"] for m in _load("macros")}
    ciods = _load("ciods")
    iods = {c["id"]: {"title": f"{c['name']} IOD", "modules": {}, "group_macros": {}} for c in ciods}
    for row in _load("ciod_to_modules"):
        iods[row["ciodId"]]["modules"][module_names[row["moduleId"]]] = _usage(row, row["moduleId"], parser.parse)
    for row in _load("ciod_to_fg_macros"):
        iods[row["ciodId"]]["group_macros"][macro_names[row["macroId"]]] = _usage(
            row, "macro:" + row["macroId"], parser.parse
        )
    ciod_ids = {c["name"]: c["id"] for c in ciods}
    iod_info = {sop["id"]: iods[ciod_ids[sop["ciod"]]] for sop in _load("sops")}

    uid_info: dict = {}
    for uid, (name, uid_type, *_) in UID_dictionary.items():
        uid_info.setdefault(uid_type, {})[uid] = name

    for filename, content in (
        ("dict_info.json", dictionary),
        ("iod_info.json", iod_info),
        ("module_info.json", modules),
        ("uid_info.json", uid_info),
    ):
        with open(json_dir / filename, "w", encoding="utf8") as f:
            json.dump(content, f, sort_keys=True, indent=1, cls=DefinitionEncoder)
    # the cache is only used if written by the same dicom-validator version
    (json_dir / "version").write_text(dicom_validator.__version__, encoding="utf8")
    # EditionReader downloads the DocBook files if they are missing
    (edition_dir / "docbook").mkdir(exist_ok=True)
    for part in ("part03.xml", "part04.xml", "part06.xml"):
        (edition_dir / "docbook" / part).touch()
    # the list of editions; a modification time in the future keeps EditionReader
    # from refreshing it online (it does so if it is older than 30 days)
    editions_path = base / "editions.json"
    editions = json.loads(editions_path.read_text()) if editions_path.exists() else []
    editions_path.write_text(json.dumps(sorted(set(editions) | {EDITION})))
    os.utime(editions_path, (4102444800, 4102444800))  # 2100-01-01
    return edition_dir


def validator(target_dir: str | os.PathLike):
    """A DicomFileValidator over the cache written to target_dir; .validate(path)[path].module_errors."""
    from dicom_validator.spec_reader.edition_reader import EditionReader
    from dicom_validator.validator.dicom_file_validator import DicomFileValidator
    from dicom_validator.validator.error_handler import NullValidationResultHandler

    write_cache(target_dir)
    info = EditionReader(str(target_dir)).load_dicom_info(EDITION)  # the JSON only, never the network
    return DicomFileValidator(info, error_handler=NullValidationResultHandler())


if __name__ == "__main__":
    default_dir = Path.home() / "dicom-validator"
    print(write_cache(sys.argv[1] if len(sys.argv) > 1 else default_dir))
