"""Authentication (bearer JWT) and OPD scoping."""

from pamong.auth.principal import PEMDA_WIDE_ROLES, ROLES, STAFF_ROLES, Principal
from pamong.auth.tokens import (
    authenticate,
    bearer_token,
    check_auth_config,
    mint_token,
    scope_check,
    verify_token,
)

__all__ = ["PEMDA_WIDE_ROLES", "ROLES", "STAFF_ROLES", "Principal", "authenticate",
           "bearer_token", "check_auth_config", "mint_token", "scope_check", "verify_token"]
