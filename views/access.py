"""Who is using the studio and what they may do (a view module, not a page: app.py does not route it).

Team mode: an [auth] section in the secrets (Streamlit's own OIDC logins, `st.login`); the identity is what the
provider vouches for and the role comes from the config's `team.roles` (engine.team). Local mode: no [auth], the
server answers on loopback only, and the person at the machine is the owner (named by $STUDIO_REVIEWER or the
login name). Every control that changes something asks `allowed(...)` on the server when it is used, and is drawn
disabled for a role that may not use it.
"""

from __future__ import annotations

import streamlit as st

from engine.config import PipelineConfig
from engine.dataset.review import default_reviewer
from engine.errors import StudioError
from engine.settings import active_config_path
from engine.team import ACTION_WORDS, Member, local_member, member_from_login
from views.ui import escape_markdown


def _auth_section() -> dict:
    if not st.secrets.load_if_toml_exists():  # no secrets file at all: local mode
        return {}
    auth = st.secrets.get("auth")
    return dict(auth) if auth else {}


def logins_configured() -> bool:
    return bool(_auth_section())


def login_provider() -> str | None:
    """The provider to log in with: None for the default one ([auth] holds client_id itself), else the first
    [auth.<provider>] table."""
    auth = _auth_section()
    if auth.get("client_id"):
        return None
    return next((name for name, value in auth.items() if isinstance(value, dict) and value.get("client_id")), None)


def _roles() -> dict[str, str]:
    try:
        return PipelineConfig.load(active_config_path()).team_roles
    except StudioError:
        return {}


def current_member() -> Member:
    """The member for this session, worked out now (the router stores it for the pages of this run)."""
    if not logins_configured():
        return local_member(default_reviewer())
    if not st.user.is_logged_in:
        return Member("", None, False)
    return member_from_login(st.user.to_dict(), _roles())


def member() -> Member:
    """The member the router found for this run (worked out afresh when a page runs on its own, as in tests)."""
    found = st.session_state.get("_studio_member")
    return found if isinstance(found, Member) else current_member()


def require_member() -> Member:
    """The router's gate: in team mode, a login screen until the person logs in, then a refusal for someone the
    config gives no role; the sidebar says who is signed in. Stops the run when there is no one to serve."""
    if not logins_configured():
        found = current_member()
        st.session_state["_studio_member"] = found
        return found
    if not st.user.is_logged_in:
        st.title("Training Data Studio")
        st.write("This studio is shared by a team: log in to review, read or change it.")
        st.button("Log in", type="primary", icon=":material/login:", key="login", on_click=st.login,
                  args=(login_provider(),) if login_provider() else ())
        st.stop()
    found = current_member()
    st.session_state["_studio_member"] = found
    if found.role is None:
        st.title("Training Data Studio")
        st.error(f"You are logged in as {escape_markdown(found.identity or 'someone without an e-mail')}, who has "
                 "no role in this studio. Ask an owner to add you to team.roles in the config.")
        st.button("Log out", key="logout", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {escape_markdown(found.identity)} · {found.role}")
        st.button("Log out", key="logout", icon=":material/logout:", type="tertiary", on_click=st.logout)
    return found


def can(action: str) -> bool:
    """Whether this session's member may `action` (read | review | change)."""
    return member().can(action)


def refusal(action: str) -> str:
    found = member()
    return f"Your role ({found.role or 'none'}) cannot {ACTION_WORDS[action]}."


def allowed(action: str) -> bool:
    """For the code behind a control: True when the member may; else an error on the page and False."""
    if can(action):
        return True
    st.error(refusal(action))
    return False


def action_button(label: str, *, action: str = "change", where=None, **kwargs) -> bool:
    """st.button that is drawn disabled (with the reason) for a role that may not `action`, and returns True only
    when it was pressed by someone who may."""
    permitted = can(action)
    if not permitted:
        kwargs["disabled"] = True
        kwargs["help"] = refusal(action)
    return bool((where or st).button(label, **kwargs)) and permitted


def action_submit(label: str, *, action: str = "change", **kwargs) -> bool:
    """st.form_submit_button with the same rule as `action_button`."""
    permitted = can(action)
    if not permitted:
        kwargs["disabled"] = True
        kwargs["help"] = refusal(action)
    return bool(st.form_submit_button(label, **kwargs)) and permitted
