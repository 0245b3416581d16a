"""``Identity``: the service's collaborators (hasher, token issuer, settings, clock),
built once per container, plus the start-up tasks (built-in roles, first admin)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider
from upgestao_kernel.config import load_settings
from upgestao_kernel.consumers import GreenStop, run_forever
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import utcnow
from upgestao_kernel.jwks import parse_jwks
from upgestao_kernel.logging import get_logger

from ..adapters.hashing import PasswordHasher
from ..adapters.hashing_pool import BoundedOffload
from ..adapters.photo_pool import PhotoWorkers
from ..adapters.sql_repositories import with_sql_repositories
from ..adapters.tokens import TokenIssuer, load_signing_keys
from ..service_layer import bootstrap, roles
from ..settings import IdentitySettings, load_identity_settings

log = get_logger(__name__)
CIVIL_TIMEZONE = ZoneInfo("America/Sao_Paulo")  # "the day of registration" is a Brazilian calendar day


def today() -> date:
    return datetime.now(CIVIL_TIMEZONE).date()


@dataclass
class Collaborators:
    settings: IdentitySettings
    hasher: PasswordHasher
    issuer: TokenIssuer
    photos: PhotoWorkers  # where photos are decoded: off the hub, a bounded number at a time
    # Why identity cannot serve yet: its start-up tasks (built-in roles, the first admin of the
    # environment) are not done. None once they are; health() reports it, so /readyz means ready.
    starting: str | None = "built-in roles and the first admin not yet in place"

    @staticmethod
    def now() -> datetime:
        return utcnow()

    @staticmethod
    def today() -> date:
        return today()


class Identity(DependencyProvider):
    """``self.identity``: settings, hasher and issuer; runs the start-up tasks."""

    def __init__(self, database_attr: str = "db") -> None:
        self.database_attr = database_attr

    def setup(self) -> None:
        base = load_settings(self.container.service_name)
        settings = load_identity_settings(base)
        self.collaborators = Collaborators(
            settings=settings,
            hasher=PasswordHasher(
                settings.bcrypt_cost, allow_low_cost=not base.production,
                offload=BoundedOffload(settings.bcrypt_concurrency, settings.bcrypt_max_waiting, settings.bcrypt_nice),
            ),
            issuer=TokenIssuer(load_signing_keys(base, os.environ), settings.access_ttl_s),
            photos=PhotoWorkers(settings.photo_concurrency),
        )
        # identity verifies the tokens it signed itself, without asking anyone for its keys
        database = next(d for d in self.container.dependencies if d.attr_name == self.database_attr)
        database.trust_token_keys(parse_jwks(self.collaborators.issuer.jwks()))
        self._bootstrap = None

    def start(self) -> None:
        self._bootstrap = self.container.spawn_managed_thread(self._run_bootstrap, identifier="identity.bootstrap")

    def _run_bootstrap(self) -> None:
        database = next(d for d in self.container.dependencies if d.attr_name == self.database_attr)

        def uow():
            return with_sql_repositories(database.unit_of_work())

        done = GreenStop()

        def step() -> None:
            try:
                # the dummy hash an unknown e-mail is checked against exists before the first login: that
                # login then costs one bcrypt check like every other (finding 4)
                self.collaborators.hasher.verify_dummy("")
                created = roles.ensure_built_in(uow)
                if created:
                    log.info("identity.roles_defined", roles=created)
                granted = roles.grant_introduced(uow)
                if granted:
                    log.info("identity.permissions_introduced", roles=granted)
                s = self.collaborators.settings
                if s.admin_email and s.admin_password and s.admin_birth_date:
                    admin_id = bootstrap.create_admin(
                        uow, self.collaborators.hasher, email=s.admin_email, password=s.admin_password,
                        full_name=s.admin_name, birth_date=s.admin_birth_date, today=today(),
                        minimum_age=s.minimum_age, only_if_none=True,
                    )
                    if admin_id:
                        log.info("identity.first_admin_created", user_id=admin_id)
                self.collaborators.starting = None
            except ServiceError as exc:  # a bad admin setting: say so (anything else: a database still starting)
                log.error("identity.first_admin_refused", problem=exc.slug, detail=exc.detail,
                          errors=exc.extensions.get("errors"))
                # never ready: the environment asks for an admin that cannot be created
                self.collaborators.starting = f"the first admin of the environment was refused: {exc.slug}"
            done.set()

        # until done: a database still starting is retried on the kernel's back-off loop
        run_forever(step, stop=done, event="identity.bootstrap_retry",
                    describe=lambda exc: {"error_type": type(exc).__name__, "exc_info": True})

    def get_dependency(self, worker_ctx) -> Collaborators:
        return self.collaborators
