"""Personal data in text: e-mail addresses (IDN domains included), phone numbers of any country (Google's
libphonenumber), payment card numbers of every network with a Luhn check (python-stdnum), IBANs (ISO 7064 mod 97)
and US social security numbers written with dashes, spaces or dots.

Numbers are judged by what they are, not by a word nearby: a Luhn-valid run of digits with a card network's
prefix and length is a card number unless the line calls it an id, an order, a timestamp or the like; a phone
number needs a country code, separators or a word such as "call" or "phone" nearby, since a bare run of digits
is far more often an id.
"""

from __future__ import annotations

import re

from engine.dataset.spans import Span

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})(?![\w-])")
_NOT_TLDS = frozenset("png jpg jpeg gif svg webp ico js jsx ts tsx mjs cjs py rs go rb java kt css scss json map "
                      "lock yml yaml toml md txt html wasm so dll exe zip gz".split())
_EXAMPLE_DOMAIN = re.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|org|net|edu)|[a-z0-9-]+\.(?:example|test|invalid|localhost|local|internal)"
    r"|localhost|users\.noreply\.github\.com|noreply\.github\.com)$")
_NOREPLY = re.compile(r"(?i)^(?:no-?reply|donotreply|do-not-reply|git|mailer-daemon|postmaster)$")

# Card networks: (prefix pattern, allowed lengths). Sources: the networks' published BIN ranges as ISO/IEC 7812
# lists them (Visa, Mastercard incl. 2-series, Amex, Discover, JCB, Diners, Maestro, UnionPay, Mir, Dankort,
# UATP, RuPay, Elo, Verve, Troy).
_NETWORKS = [
    (re.compile(r"4"), (13, 16, 19)),
    (re.compile(r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),
    (re.compile(r"3[47]"), (15,)),
    (re.compile(r"6(?:011|4[4-9]|5|22)"), (16, 17, 18, 19)),
    (re.compile(r"35(?:2[89]|[3-8]\d)"), (16, 17, 18, 19)),
    (re.compile(r"3(?:0[0-59]|[689])"), (14, 15, 16, 17, 18, 19)),
    (re.compile(r"5019|4571"), (16,)),  # Dankort
    (re.compile(r"5[06-9]|6\d"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro, UnionPay (62), RuPay (60, 65)
    (re.compile(r"220[0-4]"), (16, 17, 18, 19)),  # Mir
    (re.compile(r"1"), (15,)),  # UATP
    (re.compile(r"9792"), (16,)),  # Troy
]
_CARD = re.compile(r"(?<![\w.-])(?:\d[ -]?){11,18}\d(?![\w-]|\.\d)")
_ID_CONTEXT = re.compile(
    r"(?i)(?:\b(?:id|ids|uuid|guid|snowflake|channel|guild|chat|user|account|order|invoice|tracking|timestamp|ts|"
    r"epoch|ms|ns|seq|sequence|offset|build|version|commit|sha|hash|nonce|serial|isbn|ean|upc|gtin|imei|msisdn|"
    r"phone|tel|fax|pid|port|block|height|tx|txid)\b|_id\b|Id\b|#\s*$)")
_FACEBOOK_TOKEN = re.compile(r"\d{15,16}(?:\||%7[Cc])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\d.-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\d-]|\.\d)")
_SSN_BARE = re.compile(r"(?<![\d.-])(\d{3})(\d{2})(\d{4})(?![\d-]|\.\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social\s+security|soc\.?\s*sec|tin|itin|taxpayer)\b")
_DOCUMENTED_SSNS = frozenset({"078-05-1120", "219-09-9999", "457-55-5462"})
_PHONE_CANDIDATE = re.compile(r"(?<![\w.+/#:-])(?:\+|00)?\(?\d[\d \t().-]{5,20}\d(?![\w/-]|\.\d)")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|signal|sms|text\s+me|"
                            r"number|reach\s+me|contact|ring|dial|hotline|landline)\b|電話|номер")
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CN", "IL", "ES", "IT", "NL", "AU", "CA", "MX", "KR",
                  "SE", "CH", "PL", "RU", "SG", "ZA", "NG", "PH", "ID", "TR", "AR", "IE", "BE", "AT")
_CARD_WORDS = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|credit|debit|iban|ssn|social\s+security)\b")
_DATEISH = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$|^\d{1,2}:\d{2}")
_NOT_PHONE_LINE = re.compile(r"(?i)\b(?:version|v\d|sha|commit|build|port|pid|id|uuid|timestamp|epoch|ms|ip|"
                             r"isbn|invoice|order|amount|total|price|usd|eur)\b")


def _line_around(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start: line_end if line_end != -1 else len(text)]


def email_spans(text: str) -> list[Span]:
    spans = []
    if "@" not in text:
        return spans
    for match in _EMAIL.finditer(text):
        local, _, domain = match.group(0).rpartition("@")
        if domain.rsplit(".", 1)[-1].lower() in _NOT_TLDS or _EXAMPLE_DOMAIN.search(domain) or _NOREPLY.match(local):
            continue
        if text[match.end(): match.end() + 1] == ":" and local == "git":
            continue  # git@github.com:org/repo.git is an ssh remote
        if re.search(r"://[^\s/@]*:$", text[max(0, match.start() - 200): match.start()]):
            continue  # scheme://user:PASSWORD@host: the password and host of a URL, not an address
        spans.append(Span("email", match.start(), match.end(), "studio:email"))
    return spans


def _card_network(digits: str) -> bool:
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _NETWORKS)


def card_spans(text: str) -> list[Span]:
    from stdnum import luhn

    spans = []
    for match in _CARD.finditer(text):
        raw = match.group(0)
        digits = raw.replace(" ", "").replace("-", "")
        if not 12 <= len(digits) <= 19 or not _card_network(digits) or len(set(digits)) < 2:
            continue
        if not luhn.is_valid(digits):
            continue
        groups = re.split(r"[ -]", raw)
        if len(groups) > 1 and not all(3 <= len(group) <= 6 for group in groups):
            continue  # "2026 11 25 1234 5678" is not how cards are written
        if len(groups) == 1:
            before = text[max(0, match.start() - 30): match.start()]
            line_before = before.rsplit("\n", 1)[-1]
            if _ID_CONTEXT.search(line_before) or _FACEBOOK_TOKEN.match(text, match.start()):
                continue  # an id, a timestamp, an order number: one in ten of those passes Luhn
        spans.append(Span("credit_card", match.start(), match.end(), "studio:credit_card"))
    return spans


def _iban_valid(compact: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check (national check digits are the bank's business)."""
    from stdnum import iban

    return iban.is_valid(compact, check_country=False)


def iban_spans(text: str) -> list[Span]:
    spans = []
    for match in _IBAN.finditer(text):
        raw = match.group(0).rstrip()
        compact = re.sub(r"[ -]", "", raw)
        # A trailing word glued by a space ("DE44 5001 0517 5407 3249 31 and") is not part of the IBAN.
        while compact and not _iban_valid(compact) and re.search(r"[ -]", raw):
            raw = re.split(r"[ -](?=[^ -]*$)", raw)[0]
            compact = re.sub(r"[ -]", "", raw)
        if compact and _iban_valid(compact):
            spans.append(Span("iban", match.start(), match.start() + len(raw), "studio:iban"))
    return spans


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return not (area in {"000", "666"} or area.startswith("9") or group == "00" or serial == "0000")


def ssn_spans(text: str) -> list[Span]:
    spans = []
    for match in _SSN.finditer(text):
        area, separator, group, serial = match.groups()
        if not _ssn_valid(area, group, serial) or match.group(0) in _DOCUMENTED_SSNS:
            continue
        if separator != "-":
            line = _line_around(text, match.start(), match.end())
            if re.search(r"\d[ .]\d{3}[ .]\d{2}[ .]\d{4}|\d{3}[ .]\d{2}[ .]\d{4}[ .]\d", line):
                continue  # part of a longer grouped number (a phone, a card)
        spans.append(Span("us_ssn", match.start(), match.end(), "studio:us_ssn"))
    for match in _SSN_BARE.finditer(text):
        if _ssn_valid(*match.groups()) and _SSN_CONTEXT.search(text[max(0, match.start() - 40): match.start()]):
            spans.append(Span("us_ssn", match.start(), match.end(), "studio:us_ssn"))
    return spans


def _valid_phone(raw: str, context: bool) -> bool:
    """Valid as dialled from the US, or with its country code; a national number of another country counts where
    something calls it a number (`My Israeli number is 09-7625400`) or where it is written in three or more
    groups of ten or more digits (`090-1234-5678`)."""
    import phonenumbers

    compact = raw.strip()
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    grouped = len(re.findall(r"\d[\s().-]+(?=\d)", compact)) >= 2 and len(re.sub(r"\D", "", compact)) >= 10
    if compact.startswith("+"):
        regions = [None]
    else:
        regions = ["US", *_PHONE_REGIONS[1:]] if context or grouped else ["US"]
    for region in regions:
        try:
            number = phonenumbers.parse(compact, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def phone_spans(text: str) -> list[Span]:
    spans = []
    for match in _PHONE_CANDIDATE.finditer(text):
        raw = match.group(0).rstrip(" \t.-(")
        digits = re.sub(r"\D", "", raw)
        if not 7 <= len(digits) <= 15 or _DATEISH.match(raw) or raw.count("(") != raw.count(")"):
            continue
        previous = text[max(0, match.start() - 12): match.start()].rstrip(" \t").rsplit(None, 1)
        if previous and re.fullmatch(r"[A-Z0-9]{4}", previous[-1]) and text[match.start() - 1: match.start()] in " \t":
            continue  # the tail of a longer grouped code (an IBAN, a card, a serial): "ABNA 0417 1643 01"
        formatted = raw.startswith("+") or bool(re.search(r"\d[\s().-]+\d", raw))
        before = text[max(0, match.start() - 40): match.start()]
        context = bool(_PHONE_CONTEXT.search(before))
        if not formatted and not context:
            continue  # a bare run of digits is an id or a timestamp unless someone calls it a number
        line = _line_around(text, match.start(), match.end())
        if _NOT_PHONE_LINE.search(line) and not _PHONE_CONTEXT.search(line) or _CARD_WORDS.search(line):
            continue
        if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", raw) or re.fullmatch(r"\d+\.\d+(?:\.\d+)*", raw):
            continue  # an IP address or a version
        if _valid_phone(raw, context):
            spans.append(Span("phone_number", match.start(), match.start() + len(raw), "studio:phone_number"))
    return spans


DETECTORS = (email_spans, card_spans, iban_spans, ssn_spans, phone_spans)
