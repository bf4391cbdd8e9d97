"""Language names for the language boxes: FLORES-200 codes are what the decoder takes, names are what people read.

Names are the usual English names of the ISO 639-3 languages (the part before the underscore); a script is added
where one language is offered in several scripts (e.g. Acehnese, Arabic script / Latin script).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

LANGUAGE_NAMES = {
    "ace": "Acehnese", "acm": "Mesopotamian Arabic", "acq": "Ta'izzi-Adeni Arabic", "aeb": "Tunisian Arabic",
    "afr": "Afrikaans", "ajp": "South Levantine Arabic", "aka": "Akan", "als": "Tosk Albanian", "amh": "Amharic",
    "apc": "North Levantine Arabic", "arb": "Modern Standard Arabic", "ars": "Najdi Arabic", "ary": "Moroccan Arabic",
    "arz": "Egyptian Arabic", "asm": "Assamese", "ast": "Asturian", "awa": "Awadhi", "ayr": "Central Aymara",
    "azb": "South Azerbaijani", "azj": "North Azerbaijani", "bak": "Bashkir", "bam": "Bambara", "ban": "Balinese",
    "bel": "Belarusian", "bem": "Bemba", "ben": "Bengali", "bho": "Bhojpuri", "bjn": "Banjar", "bod": "Tibetan",
    "bos": "Bosnian", "bug": "Buginese", "bul": "Bulgarian", "cat": "Catalan", "ceb": "Cebuano", "ces": "Czech",
    "cjk": "Chokwe", "ckb": "Central Kurdish", "crh": "Crimean Tatar", "cym": "Welsh", "dan": "Danish",
    "deu": "German", "dik": "Southwestern Dinka", "dyu": "Dyula", "dzo": "Dzongkha", "ell": "Greek",
    "eng": "English", "epo": "Esperanto", "est": "Estonian", "eus": "Basque", "ewe": "Ewe", "fao": "Faroese",
    "fij": "Fijian", "fin": "Finnish", "fon": "Fon", "fra": "French", "fur": "Friulian", "fuv": "Nigerian Fulfulde",
    "gaz": "West Central Oromo", "gla": "Scottish Gaelic", "gle": "Irish", "glg": "Galician", "grn": "Guarani",
    "guj": "Gujarati", "hat": "Haitian Creole", "hau": "Hausa", "heb": "Hebrew", "hin": "Hindi",
    "hne": "Chhattisgarhi", "hrv": "Croatian", "hun": "Hungarian", "hye": "Armenian", "ibo": "Igbo",
    "ilo": "Ilocano", "ind": "Indonesian", "isl": "Icelandic", "ita": "Italian", "jav": "Javanese",
    "jpn": "Japanese", "kab": "Kabyle", "kac": "Jingpho", "kam": "Kamba", "kan": "Kannada", "kas": "Kashmiri",
    "kat": "Georgian", "kaz": "Kazakh", "kbp": "Kabiyè", "kea": "Kabuverdianu", "khk": "Halh Mongolian",
    "khm": "Khmer", "kik": "Kikuyu", "kin": "Kinyarwanda", "kir": "Kyrgyz", "kmb": "Kimbundu",
    "kmr": "Northern Kurdish", "knc": "Central Kanuri", "kon": "Kikongo", "kor": "Korean", "lao": "Lao",
    "lij": "Ligurian", "lim": "Limburgish", "lin": "Lingala", "lit": "Lithuanian", "lmo": "Lombard",
    "ltg": "Latgalian", "ltz": "Luxembourgish", "lua": "Luba-Kasai", "lug": "Ganda", "luo": "Luo", "lus": "Mizo",
    "lvs": "Standard Latvian", "mag": "Magahi", "mai": "Maithili", "mal": "Malayalam", "mar": "Marathi",
    "min": "Minangkabau", "mkd": "Macedonian", "mlt": "Maltese", "mni": "Meitei", "mos": "Mossi", "mri": "Maori",
    "mya": "Burmese", "nld": "Dutch", "nno": "Norwegian Nynorsk", "nob": "Norwegian Bokmål", "npi": "Nepali",
    "nso": "Northern Sotho", "nus": "Nuer", "nya": "Nyanja", "oci": "Occitan", "ory": "Odia", "pag": "Pangasinan",
    "pan": "Eastern Panjabi", "pap": "Papiamento", "pbt": "Southern Pashto", "pes": "Western Persian",
    "plt": "Plateau Malagasy", "pol": "Polish", "por": "Portuguese", "prs": "Dari", "quy": "Ayacucho Quechua",
    "ron": "Romanian", "run": "Rundi", "rus": "Russian", "sag": "Sango", "san": "Sanskrit", "sat": "Santali",
    "scn": "Sicilian", "shn": "Shan", "sin": "Sinhala", "slk": "Slovak", "slv": "Slovenian", "smo": "Samoan",
    "sna": "Shona", "snd": "Sindhi", "som": "Somali", "sot": "Southern Sotho", "spa": "Spanish", "srd": "Sardinian",
    "srp": "Serbian", "ssw": "Swati", "sun": "Sundanese", "swe": "Swedish", "swh": "Swahili", "szl": "Silesian",
    "tam": "Tamil", "taq": "Tamasheq", "tat": "Tatar", "tel": "Telugu", "tgk": "Tajik", "tgl": "Tagalog",
    "tha": "Thai", "tir": "Tigrinya", "tpi": "Tok Pisin", "tsn": "Tswana", "tso": "Tsonga", "tuk": "Turkmen",
    "tum": "Tumbuka", "tur": "Turkish", "twi": "Twi", "tzm": "Central Atlas Tamazight", "uig": "Uyghur",
    "ukr": "Ukrainian", "umb": "Umbundu", "urd": "Urdu", "uzn": "Northern Uzbek", "vec": "Venetian",
    "vie": "Vietnamese", "war": "Waray", "wol": "Wolof", "xho": "Xhosa", "ydd": "Eastern Yiddish", "yor": "Yoruba",
    "yue": "Cantonese", "zho": "Chinese", "zsm": "Standard Malay", "zul": "Zulu",
}
SCRIPT_NAMES = {
    "Arab": "Arabic script", "Latn": "Latin script", "Deva": "Devanagari", "Tfng": "Tifinagh", "Hans": "Simplified",
    "Hant": "Traditional",
}


def language_label(code: str, ambiguous: Iterable[str] = ()) -> str:
    """'English (eng_Latn)'; 'Chinese, Simplified (zho_Hans)' when the language is offered in several scripts."""
    language, _, script = code.partition("_")
    name = LANGUAGE_NAMES.get(language)
    if name is None:
        return code
    if language in ambiguous:
        name = f"{name}, {SCRIPT_NAMES.get(script, script)}"
    return f"{name} ({code})"


def language_choices(codes: Iterable[str]) -> list[tuple[str, str]]:
    """(label, code) pairs for a dropdown, sorted by name: only the codes given (the loaded decoder's languages)."""
    codes = list(dict.fromkeys(codes))
    counts = Counter(code.partition("_")[0] for code in codes)
    ambiguous = {language for language, n in counts.items() if n > 1}
    return sorted(((language_label(code, ambiguous), code) for code in codes), key=lambda pair: pair[0].lower())
