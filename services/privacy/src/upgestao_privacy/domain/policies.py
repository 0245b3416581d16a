"""Privacy-policy versions and each user's acceptances (R7.1, R11.1).

A version (stream ``policy-<version>``) is published once by a holder of ``privacy.policies``: its
version label, the instant it takes effect, the full text (pt-BR) and a summary for the announcement
e-mail. The *current* version is the one with the latest ``effective_at`` not in the future. Publishing
e-mails every user (``privacy.policy_published.v1``: a campaign); the first version (2023-09-05, the
text of ``shared/seed/``) is seeded without a campaign.

Each user accepts the current version (stream ``acceptance-<user id>``: their whole history); until they
do, ``GET /v1/me`` says ``policy_acceptance_required``. The texts are no one's personal data; an
acceptance holds ids, a version and an instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from upgestao_kernel.events import Aggregate

from .events import PrivacyEvent

VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")
MAX_TEXT = 200_000
MAX_SUMMARY = 2000
SEED_VERSION = "2023-09-05"
SEED_EFFECTIVE_AT = "2023-09-05T00:00:00-03:00"
SEED_SUMMARY = "Política de Privacidade do UpGestão (versão de 5 de setembro de 2023)."


class PolicyError(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class InvalidPolicy(PolicyError):
    """Bad input: 422 naming ``field``."""


class PolicyExists(PolicyError):
    """That version was published already (a version is never rewritten): 409."""


@dataclass(frozen=True)
class PolicyPublished(PrivacyEvent, subject="policy_version",
                      publishes=("policy_version", "effective_at", "campaign_id", "announced")):
    """A version of the privacy policy was published; ``announced``: every user is e-mailed (a campaign,
    ``campaign_id``, kind ``policy_published``); the seeded first version is not announced."""

    effective_at: str
    text: str
    summary: str
    published_by: str | None
    campaign_id: str
    announced: bool


@dataclass(frozen=True)
class PolicyAccepted(PrivacyEvent, subject="user_id", publishes=("user_id", "policy_version")):
    """A user accepted a version of the privacy policy (``user_id`` stored too: the person's own records are
    found by it, as every privacy event naming a person)."""

    user_id: str
    policy_version: str
    accepted_at: str


def clean_version(version: object, field: str = "version") -> str:
    if not isinstance(version, str) or not VERSION.match(version):
        raise InvalidPolicy(field, "must be 1 to 32 letters, digits, '.', '_' or '-' (e.g. 2024-03-01)")
    if version.lower() == "current":  # the name of the version in effect (GET /v1/privacy/policies/current)
        raise InvalidPolicy(field, "cannot be 'current'")
    return version


def clean_effective_at(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidPolicy("effective_at", "must be an ISO-8601 instant with its zone") from None
    else:
        raise InvalidPolicy("effective_at", "must be an ISO-8601 instant with its zone")
    if parsed.tzinfo is None:
        raise InvalidPolicy("effective_at", "must be an ISO-8601 instant with its zone")
    try:  # in UTC: PostgreSQL refuses an offset beyond 15:59 (ISO allows up to 23:59), and year 9999's end
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidPolicy("effective_at", "must be an instant before the year 10000 in UTC") from None


def clean_text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPolicy(field, "is required")
    if len(value) > limit:
        raise InvalidPolicy(field, f"must be at most {limit} characters")
    return value


class PolicyVersion(Aggregate):
    stream_type = "policy"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.effective_at = ""
        self.summary = ""
        self.campaign_id = ""
        self.announced = False

    @classmethod
    def publish(cls, version: str, *, effective_at: datetime, text: str, summary: str, published_by: str | None,
                campaign_id: str, announced: bool = True) -> PolicyVersion:
        policy = cls(clean_version(version))
        policy.trigger(PolicyPublished(effective_at=effective_at.isoformat(),
                                       text=clean_text(text, "text", MAX_TEXT),
                                       summary=clean_text(summary, "summary", MAX_SUMMARY).strip(),
                                       published_by=published_by, campaign_id=campaign_id, announced=announced))
        return policy

    def when_policy_published(self, effective_at, text, summary, published_by, campaign_id, announced) -> None:
        self.effective_at, self.summary = effective_at, summary
        self.campaign_id, self.announced = campaign_id, announced


class Acceptances(Aggregate):
    """One user's acceptances of policy versions (the history, oldest first)."""

    stream_type = "acceptance"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.accepted: dict[str, str] = {}  # version -> accepted_at

    def accept(self, version: str, accepted_at: datetime) -> bool:
        """Record the acceptance of ``version``; ``False`` when it was accepted already (nothing recorded)."""
        if version in self.accepted:
            return False
        self.trigger(PolicyAccepted(user_id=self.id, policy_version=version, accepted_at=accepted_at.isoformat()))
        return True

    def when_policy_accepted(self, user_id, policy_version, accepted_at) -> None:
        self.accepted[policy_version] = accepted_at


def current_of(versions: list[tuple[str, datetime]], now: datetime) -> str | None:
    """The current version among ``(version, effective_at)``: the latest already in effect."""
    in_effect = [(effective_at, version) for version, effective_at in versions if effective_at <= now]
    return max(in_effect)[1] if in_effect else None


def acceptance_required(current: str | None, accepted: set[str]) -> dict | None:
    """What ``GET /v1/me`` says: ``{"version"}`` when the current version is not accepted yet."""
    if current is None or current in accepted:
        return None
    return {"version": current}


# The text of version 2023-09-05, as /work/shared/seed/politica-de-privacidade-upgestao.txt holds it
SEED_TEXT = (
    'Política de Privacidade do UpGestão\n'
    '\n'
    'A Virtux Tech (“nós”, “nosso”, “a empresa”) tem o compromisso de proteger a privacidade '
    'dos usuários e clientes da solução UpGestão. Esta Política de Privacidade destina-se a '
    'informar sobre as práticas relativas à coleta, uso e divulgação de informações que você '
    'possa fornecer através da plataforma UpGestão.\n'
    '\n'
    '1. Informações que coletamos\n'
    '\n'
    'Coletamos informações de usuários, atendentes e clientes, que podem incluir:\n'
    '\n'
    '  • Nome completo, endereço, e-mail, telefone, data de nascimento, cargo.\n'
    '  • Senha criptografada para acesso ao UpGestão.\n'
    '  • Conversas com os clientes e entre colaboradores.\n'
    '  • Foto de perfil e gênero.\n'
    '\n'
    '2. Uso das Informações\n'
    '\n'
    'As informações coletadas são utilizadas para:\n'
    '\n'
    '  • Facilitar o uso da ferramenta conforme os níveis de permissão de cada usuário.\n'
    '  • Aprimorar a experiência do usuário e a eficácia da nossa plataforma.\n'
    '\n'
    '3. Armazenamento das Informações\n'
    '\n'
    'As informações são armazenadas em servidores seguros e contamos com backups de '
    'redundância para proteger contra a perda das informações.\n'
    '\n'
    '4. Compartilhamento de Informações\n'
    '\n'
    'Compartilhamos informações básicas, como e-mail, nome, telefone e conversas, com '
    'ferramentas pelas quais integramos através de API. O objetivo deste compartilhamento é '
    'garantir a integração e eficácia do serviço prestado.\n'
    '\n'
    '5. Acesso e correção das Informações Pessoais\n'
    '\n'
    'Os usuários podem editar suas informações pessoais conforme o nível de permissão '
    'concedido. Se não possuírem a permissão necessária, deverão fazer um requerimento ao '
    'usuário com a permissão de acesso adequada.\n'
    '\n'
    '6. Procedimento em caso de vazamento\n'
    '\n'
    'Em caso de vazamento de dados, os usuários serão notificados por e-mail e serão '
    'orientados sobre as medidas a serem tomadas.\n'
    '\n'
    '7. Uso de Cookies\n'
    '\n'
    'Usamos cookies para melhorar a experiência do usuário e personalizar conteúdo e anúncios. '
    'Ao utilizar a plataforma, o usuário concorda com o uso de cookies.\n'
    '\n'
    '8. Idade Mínima\n'
    '\n'
    'Para utilizar a plataforma UpGestão, é necessário ter no mínimo 18 anos de idade.\n'
    '\n'
    '9. Links para Terceiros\n'
    '\n'
    'Nossa plataforma possui links para sites de terceiros. Aconselhamos a leitura das '
    'políticas de privacidade desses sites:\n'
    '\n'
    '10. Contato\n'
    '\n'
    'Para questões relacionadas a esta Política de Privacidade, entre em contato conosco '
    'através do\xa0contato@virtux.com.br, ou então nos envie uma mensagem '
    'por\xa0https:\\\\upgestao.com.br\\contato\n'
    '\n'
    'Reservamos o direito de alterar esta Política de Privacidade a qualquer momento, por '
    'isso, aconselhamos a revisá-la regularmente.\n'
    '\n'
    'Última atualização: 05 de setembro de 2023.'
)
