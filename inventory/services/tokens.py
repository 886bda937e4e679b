"""Issuing, checking and revoking API tokens. A secret is shown once and kept only hashed."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from ..db.engine import rows_of
from ..db.models import Holder, Token, TokenDepot
from ..domain.actors import Actor, Role
from ..domain.policy import Action
from . import accountability
from .errors import Conflict, Invalid, NotFound
from .unit_of_work import UnitOfWork

SECRET_PREFIX = "stk_"


def _digest(secret: str) -> str:
    # Secrets are 256 random bits, so a plain SHA-256 is as strong as a slow hash here.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: Token
    secret: str


def create_token(uow: UnitOfWork, name: str, role: str, depots: list[str]) -> IssuedToken:
    """Issue a token; clerks must be scoped to at least one depot, other roles to none. Names
    say who holds a credential, so two active tokens never share one."""
    if role not in {str(r) for r in Role}:
        raise Invalid(
            f"unknown role {role!r}; one of {', '.join(str(r) for r in Role)}", field="role"
        )
    role_ = Role(role)
    if not name.strip():
        raise Invalid("a token needs the name of the person or system holding it", field="name")
    if duplicated := sorted({code for code in depots if depots.count(code) > 1}):
        raise Invalid(f"depot {duplicated[0]} is listed twice", field="depots")
    if role_ is Role.CLERK and not depots:
        raise Invalid("a clerk token needs at least one depot", field="depots")
    if role_ is not Role.CLERK and depots:
        raise Invalid(f"a {role} token is not scoped to depots; leave depots out", field="depots")
    holders = []
    for code in depots:
        depot = uow.session.scalar(
            select(Holder).where(Holder.kind == "depot", Holder.code == code)
        )
        if depot is None:
            raise Invalid(f"unknown depot {code!r}", field="depots")
        holders.append(depot)
    holder_of_name = uow.session.scalar(
        select(Token.id).where(Token.name == name, Token.revoked_at.is_(None))
    )
    if holder_of_name is not None:
        raise Conflict(
            f"active token {holder_of_name} is already named {name!r}; names say who holds a "
            "credential, so give this one its holder's own name (or revoke the other first)"
        )
    accountability.require(uow, Action.TOKEN_CREATE)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        id=uuid.uuid4(),
        name=name,
        role=str(role_),
        secret_sha256=_digest(secret),
        created_at=uow.now,
        created_by=uow.actor.name,
        depots=holders,
    )
    uow.session.add(token)
    uow.record("token.create", f"token:{token.id}", {"name": name, "role": role, "depots": depots})
    return IssuedToken(token, secret)


def free_name(session: Session, name: str) -> str:
    """`name`, or `name (2)`, `name (3)`... whichever no active token holds (a demo restarted
    after its saved tokens were lost)."""
    taken = set(
        session.scalars(
            select(Token.name).where(Token.name.startswith(name), Token.revoked_at.is_(None))
        )
    )
    candidates = [name] + [f"{name} ({n})" for n in range(2, len(taken) + 2)]
    return next(candidate for candidate in candidates if candidate not in taken)


def revoke_token(uow: UnitOfWork, token_id: uuid.UUID) -> Token:
    token = uow.session.get(Token, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}")
    accountability.require(uow, Action.TOKEN_REVOKE)
    if token.revoked_at is None and token.role == str(Role.ADMIN):
        others = uow.session.scalar(
            select(func.count())
            .select_from(Token)
            .where(Token.role == str(Role.ADMIN), Token.revoked_at.is_(None), Token.id != token.id)
        )
        if not others:
            raise Conflict(
                f"token {token.id} ({token.name}) is the last active admin token: revoking it "
                "would leave the API without an admin. Make another first, on the server: "
                "`inventory tokens create --role admin`"
            )
    if token.revoked_at is None:
        token.revoked_at = uow.now
    uow.record("token.revoke", f"token:{token.id}", {"name": token.name})
    return token


# Every request asks this: one round trip, plain rows (the token and each of its depots), with a
# statement built once and run on the driver (`rows_of`).
# Nothing is cached between requests, so a revocation holds from the next request on.
_BY_SECRET = (
    select(Token.id, Token.name, Token.role, Token.revoked_at, Holder.code)
    .outerjoin(TokenDepot, TokenDepot.token_id == Token.id)
    .outerjoin(Holder, Holder.id == TokenDepot.holder_id)
    .where(Token.secret_sha256 == bindparam("digest"))
)


def authenticate(session: Session, secret: str) -> Actor | None:
    """The actor a presented secret stands for, or None if it is unknown or revoked."""
    rows = rows_of(session, _BY_SECRET, {"digest": _digest(secret)})
    if not rows:
        return None
    token_id, name, role, revoked_at, _code = rows[0]
    if revoked_at is not None:
        return None
    return Actor(
        name=name,
        role=Role(role),
        depots=frozenset(code for *_token, code in rows if code is not None),
        token_id=token_id,
    )
