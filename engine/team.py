"""Who may do what in the studio: roles from the config's `team` section, for people who log in with the studio's
OIDC provider (Streamlit's `st.login`, configured by an [auth] section in .streamlit/secrets.toml).

- owner: everything (sources, linking, exports, training, jobs, review settings, settling conflicts);
- reviewer: review (answer, undo, bulk answers) and read;
- viewer: read.

`team.roles` maps an identity to a role: an e-mail address (`dana@example.com`), every address of a domain
(`*@example.com`) or everyone who can log in (`*`); an exact address wins over a domain, a domain over `*`. A
logged-in person who matches nothing has no access. Without logins (local mode, loopback only) the person at the
machine is the owner. The identity recorded with every answer is the e-mail the provider vouches for (its `sub`
when it gives none), never a name typed into a box.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("owner", "reviewer", "viewer")
PERMISSIONS = {
    "owner": frozenset({"read", "review", "change"}),
    "reviewer": frozenset({"read", "review"}),
    "viewer": frozenset({"read"}),
}
ACTION_WORDS = {"review": "review", "change": "change the studio (owners only)", "read": "read"}


@dataclass(frozen=True)
class Member:
    """The person using the studio now: identity (e-mail or sub, or the local user name), role, and whether they
    logged in (False in local mode)."""

    identity: str
    role: str | None
    logged_in: bool

    def can(self, action: str) -> bool:
        return self.role is not None and action in PERMISSIONS[self.role]


def role_for(identity: str, roles: dict[str, str]) -> str | None:
    """The role of `identity` under `team.roles` (exact address, then `*@domain`, then `*`), None when none."""
    wanted = identity.strip().lower()
    table = {pattern.strip().lower(): role for pattern, role in roles.items()}
    if wanted in table:
        return table[wanted]
    if "@" in wanted:
        domain = wanted.rsplit("@", 1)[1]
        if f"*@{domain}" in table:
            return table[f"*@{domain}"]
    return table.get("*")


def member_from_login(claims: dict, roles: dict[str, str]) -> Member:
    """The member for an OIDC login's claims (st.user): identity is the e-mail when the provider gives one, else
    the subject."""
    identity = str(claims.get("email") or claims.get("sub") or "").strip()
    return Member(identity, role_for(identity, roles) if identity else None, True)


def local_member(name: str) -> Member:
    """Local mode: no logins, loopback only; the person at the machine owns the studio."""
    return Member(name, "owner", False)


# ------------------------------------------------------------------------------------------------- login settings

_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


@dataclass(frozen=True)
class LoginSettings:
    """The [auth] section Streamlit will use: where it was read, the redirect URI (whose host teammates use) and
    the providers (None is the default provider, whose keys sit directly in [auth])."""

    source: str
    redirect_uri: str
    providers: tuple[str | None, ...]


def _providers(auth: dict) -> list[str | None]:
    found: list[str | None] = []
    if all(auth.get(key) for key in _PROVIDER_KEYS):
        found.append(None)
    found += [name for name, value in auth.items()
              if isinstance(value, dict) and all(value.get(key) for key in _PROVIDER_KEYS)]
    return found


def read_login_settings(files: list[str]) -> LoginSettings | None:
    """The [auth] section of the secrets files Streamlit reads (later files win, as in Streamlit); None when no
    file has one. A StudioError names what an [auth] section that is there lacks."""
    import tomllib
    from pathlib import Path

    from engine.errors import StudioError

    auth, source = None, None
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise StudioError(f"{path} cannot be read as TOML ({exc}); fix it or move it away.") from None
        if isinstance(data.get("auth"), dict) and data["auth"]:
            auth, source = data["auth"], str(path)
    if auth is None:
        return None
    missing = [key for key in ("redirect_uri", "cookie_secret") if not auth.get(key)]
    providers = _providers(auth)
    if not providers:
        missing.append("client_id, client_secret and server_metadata_url (in [auth] or an [auth.<provider>] table)")
    if missing:
        raise StudioError(f"The [auth] section of {source} lacks {', '.join(missing)}; see the README's team mode.")
    redirect_uri = str(auth["redirect_uri"])
    if not redirect_uri.rstrip("/").endswith("/oauth2callback"):
        raise StudioError(f"auth.redirect_uri in {source} must end with /oauth2callback (it is {redirect_uri!r}).")
    return LoginSettings(source, redirect_uri, tuple(providers))
