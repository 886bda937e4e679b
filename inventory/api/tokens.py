"""Token administration: issue (the secret is in the 201 response only), list, revoke."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ..db.models import Token
from ..domain.actors import Role
from ..services import tokens
from ..services.tokens import IssuedToken
from .auth import allow
from .context import db_session, write
from .pagination import PageArgs, keyset_page, page_of

blp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens", description="API tokens (admin)")


class TokenSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf([str(r) for r in Role]))
    depots = fields.List(
        fields.String(),
        attribute="depot_codes",
        load_default=list,
        metadata={"description": "depot codes a clerk is scoped to"},
    )
    created_at = fields.AwareDateTime(dump_only=True)
    created_by = fields.String(dump_only=True)
    revoked_at = fields.AwareDateTime(dump_only=True, allow_none=True)


class IssuedTokenSchema(TokenSchema):
    token = fields.String(dump_only=True, metadata={"description": "the secret; shown only now"})


def _present_issued(issued: IssuedToken, _uow: Any) -> dict[str, Any]:
    body: dict[str, Any] = TokenSchema().dump(issued.token)
    return {**body, "token": issued.secret}


@blp.route("")
class Tokens(MethodView):
    @allow(Role.ADMIN)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(TokenSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List tokens (never their secrets)"""
        return keyset_page(db_session(), select(Token), Token.id, args)

    @allow(Role.ADMIN)
    @blp.arguments(TokenSchema)
    @blp.response(201, IssuedTokenSchema)
    def post(self, data: dict[str, Any]) -> Response:
        """Issue a token. The secret is in this response and nowhere else."""
        return write(
            lambda uow: tokens.create_token(uow, data["name"], data["role"], data["depot_codes"]),
            _present_issued,
        )


@blp.route("/<uuid:token_id>")
class TokenById(MethodView):
    @allow(Role.ADMIN)
    @blp.response(200, TokenSchema)
    def delete(self, token_id: uuid.UUID) -> Response:
        """Revoke a token; it stops working at once"""
        return write(lambda uow: tokens.revoke_token(uow, token_id), TokenSchema(), status=200)
