"""The census record as a domain object: column names, category domains, numeric ranges, labels.

Pure Python on purpose: validation (pandera), the predictor and the API's Pydantic schemas all
derive their rules from these constants, and the serving install must not need pandas to do so.
"""

from __future__ import annotations

from typing import Final

LABEL: Final = "salary"
POSITIVE_LABEL: Final = ">50K"
NEGATIVE_LABEL: Final = "<=50K"
LABELS: Final = (NEGATIVE_LABEL, POSITIVE_LABEL)

NUMERIC_RANGES: Final[dict[str, tuple[int, int]]] = {
    # Bounds are the plausible domain of each field, a little wider than what UCI observed,
    # so a genuine record is never refused while a typo (age 400) is.
    "age": (17, 100),
    "fnlgt": (1, 2_000_000),
    "education-num": (1, 16),
    "capital-gain": (0, 99_999),
    "capital-loss": (0, 10_000),
    "hours-per-week": (1, 99),
}

CATEGORY_DOMAINS: Final[dict[str, tuple[str, ...]]] = {
    # Domains as listed in UCI's adult.names.
    "workclass": (
        "Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov", "State-gov",
        "Without-pay", "Never-worked",
    ),
    "education": (
        "Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm", "Assoc-voc",
        "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate", "5th-6th", "Preschool",
    ),
    "marital-status": (
        "Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
        "Married-spouse-absent", "Married-AF-spouse",
    ),
    "occupation": (
        "Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
        "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
        "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv", "Armed-Forces",
    ),
    "relationship": (
        "Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried",
    ),
    "race": ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"),
    "sex": ("Female", "Male"),
    "native-country": (
        "United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
        "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba", "Iran",
        "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico", "Portugal",
        "Ireland", "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia",
        "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand", "Yugoslavia", "El-Salvador",
        "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands",
    ),
}  # fmt: skip

# Fields where UCI's data has missing values ("?"); elsewhere a missing value is an error.
NULLABLE: Final = frozenset({"workclass", "occupation", "native-country"})

# Column order of the UCI files and of the course's census.csv header.
COLUMNS: Final = (
    "age", "workclass", "fnlgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
    "native-country", LABEL,
)  # fmt: skip
FEATURES: Final = COLUMNS[:-1]
# Joins the features of a crossing ("race x sex") and their values ("Black x Female"): slices,
# the audit and the card recognise an intersectional group by it.
CROSS: Final = " x "
CATEGORICAL: Final = tuple(c for c in FEATURES if c in CATEGORY_DOMAINS)
NUMERIC: Final = tuple(c for c in FEATURES if c in NUMERIC_RANGES)
