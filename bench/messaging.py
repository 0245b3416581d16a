"""Scenario ``messaging``: the help desk's costs beside GET /v1/ping, on SQLite and on PostgreSQL (issue 13).

For each database (``BENCH_MESSAGING_DATABASES``, both by default) a fresh platform (every service; on
PostgreSQL each service its own fresh database) and, through the gateway, a help desk: the first admin,
two attendants A and B, S supervisors (the push clients, IDENTITY_BCRYPT_COST=4: a user is cheap), one team
holding them all, C customers and V conversations of that team (70 % assigned to A, 30 % to B), one of
them the "big" conversation, assigned to A. Then:

1. ``seed``: M messages (100,000) written straight into messaging's database the way its own send path
   writes them: the ``messaging.message_created.v1`` event appended to the event log (the aggregate's own
   event, with the body sealed by the kernel vault under the customer's key: real AES-GCM ciphertext), the
   ``messages`` and ``message_versions`` read-model rows at that event's position, the search index's rows
   (keyed hashes of the normalised words, H4's ``TermHasher`` under the service's own search key), the
   conversations' last activity. No audit records and no outbox rows (nothing happened to publish): what a
   send adds beyond that is measured in (3). Bodies are realistic Portuguese help-desk messages (templates
   and slot values: names, cities, products, order numbers, amounts; a Zipf-like mix of common and rare
   words), ``BIG`` of them in the big conversation, the rest spread over the others. Checked afterwards
   through the gateway: a page reads back exactly the bodies written, a search finds a rare word's message.
2. ``ping``: GET /v1/ping (gateway -> RPC -> identity, no auth) at every connection count used below,
   the baseline of every ratio.
3. ``page``: GET /v1/conversations/{big}/messages?limit=50 as attendant A (the latest page for 1 request
   in 5, else ``before=<a random message of the big conversation>``): each answer opens and audits 50
   bodies. Target p99 <= 30 ms (at the highest read concurrency). Zulip: p99 30-49 ms.
4. ``search``: GET /v1/messages/search?q= as A over the M messages (A sees 70 % of the conversations:
   the visibility rule filters the hits), 1-3 words each of mixed frequency (very common, common, rare,
   a rare order number; half of them typed without accents or capitals). Target p99 <= 50 ms.
   Then messaging's outbox is waited for: events and audit records share it, in order, and the reads left one
   audit record per body opened; the backlog and the time its relay took are recorded (``outbox_drain``),
   so the next measurements start on an empty queue (again after the sends).
5. ``send``: POST /v1/conversations/{id}/messages as A (outgoing, a new Portuguese body every request,
   A's conversations in turn) at 10 and 50 connections, with L WebSocket listeners connected (A and
   L-1 supervisors of the team: each send is pushed, opened and audited for each of them). Targets at
   10 connections: req/s >= 0.4 x /v1/ping req/s, p50 <= 20 ms, p99 <= 100 ms. Zulip: 88-92 msg/s,
   p50 32 ms, p99 57-79 ms.
6. ``push``: the S supervisors connected to GET /v1/stream (WebSocket, token in the first message); A sends
   K messages one at a time, one every PUSH_INTERVAL; latency = a client's receipt of ``message.created``
   carrying that message's id and body - the moment before the POST was written (one clock: this process).
   Every client must receive every message once. Target p99 <= 100 ms.
7. ``rss``: VmRSS (and VmHWM, the peak) of the messaging service process from /proc/<pid>/status after all
   that. Target <= 150 MiB. Zulip: about 230 MiB per process.

Each HTTP measurement also records the CPU milliseconds every platform process spent per request meanwhile
(``cpu_ms_per_request``, from /proc/<pid>/stat): on a shared machine, what a request costs holds better than
its latency. Every figure goes into bench/results/messaging.json beside its baseline, the targets and whether
each is met, and the 1-minute load average before and after each database's run (2 shared cores: other work
shows there).
The platform, RabbitMQ, PostgreSQL, wrk, the WebSocket clients and this process share the machine's cores.
Any unexpected answer (a non-2xx, a missing or duplicated push, a body that does not read back) fails the
scenario (exit 1).

    BENCH_MESSAGING_DATABASES     sqlite,postgresql (default both, in that order)
    BENCH_MESSAGING_MESSAGES      M, messages seeded (100000)
    BENCH_MESSAGING_BIG           of which in the big conversation (20000)
    BENCH_MESSAGING_CONVERSATIONS V (200)
    BENCH_MESSAGING_CUSTOMERS     C (50)
    BENCH_MESSAGING_SUPERVISORS   S, the WebSocket clients of the push measurement (50)
    BENCH_MESSAGING_LISTENERS     L, WebSocket listeners connected while sending (5: A and 4 supervisors)
    BENCH_MESSAGING_SEND_CONNS    connections of the send measurement (10,50)
    BENCH_MESSAGING_READ_CONNS    connections of the page and search measurements (1,10)
    BENCH_MESSAGING_PUSH_MESSAGES K (60)
    BENCH_MESSAGING_PUSH_INTERVAL_S  seconds between two pushed sends (0.2)
    BENCH_DURATION_S              seconds per HTTP measurement (8)
    BENCH_WARMUP_S                unrecorded warm-up of each kind of request (2)
    BENCH_MESSAGING_SEED          the text generator's random seed (13)
    BENCH_MESSAGING_TIMEOUT_S     hard limit of the whole scenario (900)
    BENCH_MESSAGING_START_S       a platform must be ready within this, migrations included (240)
    BENCH_LOADGEN                 wrk | python (default: wrk if installed)
    BENCH_MESSAGING_PROFILE       a directory: the messaging service, its relay and the gateway under ``py-spy record``
                                  during each measured page, search and send run (<database>-<what>-c<N>-<process>.txt,
                                  collapsed stacks; py-spy in the venv); costs some CPU
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import contextlib  # noqa: E402
import http.client  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from urllib.parse import quote, urlsplit  # noqa: E402

import psycopg2  # noqa: E402
from common import (  # noqa: E402
    PG_ADMIN,
    bench_vhost,
    env_float,
    env_int,
    load_average,
    log,
    percentile,
    ratio,
    result,
    run_scenario,
)
from identity import ADMIN_ENV, STAFF_PASSWORD, BenchFailure, call, staff_payload, wait_for_admin  # noqa: E402
from loadgen import LoadResult, _ms, wrk_available, wrk_version  # noqa: E402
from notifier import (  # noqa: E402
    backend_pids,
    broker_pids,
    cpu_seconds,
    query,
    start_py_spy,
    started_platform,
    stop_py_spy,
)
from upgestao_kernel.config import env_prefix  # noqa: E402
from upgestao_platform import SERVICE_NAMES, Platform, free_address  # noqa: E402

SCENARIO = "messaging"
PING = "/v1/ping"
STREAM = "/v1/stream"
MiB = 1024 * 1024
TARGETS = {
    "send_rps_over_ping_c10 >=": 0.4,
    "send_p50_ms_c10 <=": 20.0,
    "send_p99_ms_c10 <=": 100.0,
    "page_p99_ms <=": 30.0,
    "search_p99_ms <=": 50.0,
    "push_p99_ms <=": 100.0,
    "rss_mib <=": 150.0,
}
ZULIP = {
    "send_c10": "88-92 msg/s, p50 32 ms, p99 57-79 ms",
    "page_of_50": "p99 30-49 ms",
    "rss": "about 230 MiB per process",
    "setup": "Django under uwsgi (3 processes), Tornado, PostgreSQL, RabbitMQ, 2 cores",
}
PLATFORM_ENV = {**ADMIN_ENV, "IDENTITY_BCRYPT_COST": "4"}  # users are cheap here; no login is measured
HTTP_TIMEOUT_S = 30.0


# -- realistic Portuguese help-desk text ------------------------------------------------------------

FIRST_NAMES = (
    "Ana", "Beatriz", "Carla", "Daniela", "Eduarda", "Fernanda", "Gabriela", "Helena", "Isabela", "Juliana",
    "Larissa", "Mariana", "Natália", "Patrícia", "Raquel", "Sofia", "Tatiane", "Vitória", "Yasmin", "Luíza",
    "André", "Bruno", "Carlos", "Diego", "Eduardo", "Felipe", "Gustavo", "Henrique", "Igor", "João",
    "Lucas", "Marcelo", "Nícolas", "Otávio", "Paulo", "Rafael", "Sérgio", "Thiago", "Vinícius", "Wagner",
    "Antônio", "Cecília", "Conceição", "Joaquim", "Lúcia", "Márcio", "Rogério", "Simone", "Valéria", "Élson",
)
SURNAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima", "Gomes",
    "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes", "Vieira", "Barbosa",
    "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques", "Machado", "Mendes", "Freitas",
    "Araújo", "Conceição", "Figueiredo", "Guimarães", "Magalhães", "Simões", "Assunção", "Brandão", "Falcão",
)
CITIES = (
    "São Paulo", "Rio de Janeiro", "Belo Horizonte", "Brasília", "Salvador", "Fortaleza", "Curitiba", "Recife",
    "Porto Alegre", "Manaus", "Belém", "Goiânia", "Guarulhos", "Campinas", "São Luís", "Maceió", "Natal",
    "Teresina", "João Pessoa", "Florianópolis", "Vitória", "Cuiabá", "Aracaju", "Londrina", "Joinville",
    "Niterói", "Ribeirão Preto", "Uberlândia", "Sorocaba", "Santos", "Jundiaí", "Petrópolis", "Maringá",
    "Blumenau", "Caxias do Sul", "Pelotas", "Anápolis", "Macapá", "Palmas", "Boa Vista", "Ilhéus", "Itajaí",
)
PRODUCTS = (
    "geladeira frost free", "fogão de quatro bocas", "máquina de lavar", "micro-ondas", "ar-condicionado split",
    "televisão de 50 polegadas", "notebook", "celular", "fone de ouvido sem fio", "liquidificador",
    "cafeteira elétrica", "aspirador de pó", "ventilador de coluna", "secadora", "lava-louças", "impressora",
    "monitor", "teclado", "mouse sem fio", "cadeira de escritório", "colchão de casal", "sofá retrátil",
    "guarda-roupa", "mesa de jantar", "bicicleta aro 29", "panela de pressão", "jogo de toalhas", "ferro de passar",
    "purificador de água", "smartwatch", "caixa de som", "roteador wi-fi", "tablet", "câmera de segurança",
    "forno elétrico", "batedeira planetária", "air fryer", "churrasqueira elétrica", "tênis de corrida", "mochila",
)
WEEKDAYS = ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado")
PAYMENTS = ("boleto", "Pix", "cartão de crédito", "cartão de débito", "transferência")
CARRIERS = ("Correios", "transportadora", "Sedex", "motoboy", "entrega expressa")
INCOMING = (
    "Olá, bom dia! Meu pedido {pedido} ainda não chegou. Comprei um(a) {produto} na {dia} e o prazo já venceu.",
    "Boa tarde, preciso de ajuda com o pedido {pedido}: o(a) {produto} veio com defeito e não liga.",
    "Oi, gostaria de saber se dá para trocar o(a) {produto} por outro modelo. Número do pedido: {pedido}.",
    "Paguei o {pagamento} de R$ {valor} ontem e o pedido {pedido} continua como aguardando pagamento.",
    "Bom dia, moro em {cidade} e o rastreio dos {transportadora} parou há cinco dias. O que aconteceu?",
    "Quero cancelar a compra {pedido}, por favor. Ainda não foi enviada, certo?",
    "A nota fiscal do pedido {pedido} está com o endereço errado. Meu nome é {nome}, CEP de {cidade}.",
    "Recebi o(a) {produto} quebrado(a), a caixa estava amassada. Como faço a devolução?",
    "Vocês entregam em {cidade}? Quero comprar um(a) {produto} mas o site não calcula o frete.",
    "Já é a terceira vez que entro em contato sobre o reembolso de R$ {valor}. Ninguém me responde!",
    "Olá, a garantia do(a) {produto} cobre troca de peça? Comprei há oito meses.",
    "Não consigo acessar minha conta para acompanhar o pedido {pedido}. A senha não funciona.",
    "O entregador passou na {dia} e eu não estava em casa. Dá para reagendar a entrega?",
    "Obrigado pelo retorno! Só mais uma dúvida: o(a) {produto} tem voltagem 220V?",
    "Fiz o pagamento via {pagamento} e cobraram duas vezes o valor de R$ {valor}. Preciso do estorno.",
    "Boa noite, o cupom de desconto não foi aplicado no pedido {pedido}.",
    "Meu pedido {pedido} foi entregue no endereço errado, em {cidade}. Preciso de uma solução urgente.",
    "Estou esperando a assistência técnica para o(a) {produto} desde {dia}. Alguém pode verificar?",
)
OUTGOING = (
    "Olá, {nome}! Sinto muito pelo transtorno. Verifiquei o pedido {pedido} e ele está com a {transportadora}, "
    "com previsão de entrega até {dia}.",
    "Oi, {nome}, tudo bem? Já abri a solicitação de troca do(a) {produto}. Você receberá um e-mail com o código "
    "de postagem em até 24 horas.",
    "{nome}, o reembolso de R$ {valor} foi aprovado e cai na sua conta em até cinco dias úteis.",
    "Bom dia, {nome}! Confirmamos o pagamento via {pagamento}. O pedido {pedido} já está em separação.",
    "Entendo sua frustração, {nome}. Encaminhei o caso para a equipe de logística de {cidade} com prioridade alta.",
    "Olá! Para seguir com a devolução, envie por favor uma foto da embalagem e do(a) {produto}.",
    "{nome}, o cancelamento do pedido {pedido} foi realizado. O estorno no {pagamento} aparece na próxima fatura.",
    "Sim, entregamos em {cidade}! O frete para o(a) {produto} sai por R$ {valor} e chega em até sete dias.",
    "Obrigada pelo contato, {nome}. A garantia do(a) {produto} é de doze meses e cobre defeitos de fabricação.",
    "Reagendei a entrega para {dia}, entre 8h e 18h. Qualquer dúvida, estou à disposição.",
    "Corrigimos o endereço da nota fiscal do pedido {pedido}. A nova nota segue por e-mail.",
    "Peço desculpas pela cobrança em duplicidade, {nome}. O estorno de R$ {valor} já foi solicitado.",
    "O cupom foi aplicado manualmente: a diferença de R$ {valor} será devolvida no {pagamento}.",
    "Vou transferir você para o setor de assistência técnica de {cidade}, que entra em contato ainda hoje.",
)
PRIVATE = (
    "Nota interna: cliente {nome} já ligou três vezes sobre o pedido {pedido}, tratar com prioridade.",
    "Verificar com o financeiro o estorno de R$ {valor} antes de responder.",
    "A {transportadora} de {cidade} confirmou extravio: autorizar reenvio do(a) {produto}.",
    "Cliente pediu retorno por telefone na {dia}; não prometer prazo sem falar com a logística.",
)
FILLER = (
    "Aguardo retorno.", "Obrigado!", "Obrigada pela atenção.", "Fico no aguardo.", "Att.", "Por favor, me ajudem.",
    "É urgente.", "Qualquer novidade me avise.", "Tenha um ótimo dia!", "Estamos à disposição.",
    "Agradecemos a compreensão.", "Protocolo de atendimento gerado.",
)


def _strip_accents(text: str) -> str:
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


class HelpDeskText:
    """Seeded generator of Portuguese help-desk messages and of search queries over them.

    Every body is one template of its direction with its slots filled (a name, a city, a product, a
    6-digit order number, an amount, a weekday, a payment method, a carrier), sometimes followed by a
    short closing sentence: function words and help-desk words appear in most messages, names and cities
    in a few percent, an order number in a handful. ``count`` keeps each normalised word's number of
    messages, from which :meth:`queries` picks words of every frequency.
    """

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.count: Counter[str] = Counter()

    def _slots(self) -> dict[str, str]:
        r = self.random
        order = f"{r.randrange(100000, 999999)}"
        return {
            "nome": f"{r.choice(FIRST_NAMES)}" + (f" {r.choice(SURNAMES)}" if r.random() < 0.5 else ""),
            "cidade": r.choice(CITIES), "produto": r.choice(PRODUCTS), "pedido": order,
            "valor": f"{r.randrange(19, 4999)},{r.randrange(100):02d}", "dia": r.choice(WEEKDAYS),
            "pagamento": r.choice(PAYMENTS), "transportadora": r.choice(CARRIERS),
        }

    def body(self, direction: str, private: bool = False) -> str:
        r = self.random
        templates = PRIVATE if private else INCOMING if direction == "incoming" else OUTGOING
        text = r.choice(templates).format(**self._slots())
        if r.random() < 0.4:
            text += " " + r.choice(FILLER)
        return text

    def observe(self, words: Sequence[str]) -> None:
        self.count.update(words)

    def queries(self, n: int, normalise) -> list[str]:
        """``n`` queries of 1-3 words: very common (the 20 most frequent words of 3 letters or more), common
        (rank 20-200), rare (in at most 50 messages: a name, an amount), an order number (in one or two);
        half typed without accents, some capitalised."""
        ranked = [w for w, _ in self.count.most_common() if not w.isdigit() and len(w) > 2]
        very, common = ranked[:20], ranked[20:200]
        orders = [w for w in self.count if len(w) == 6 and w.isdigit()] or ranked[-50:]
        rare = [w for w, c in self.count.items() if c <= 50 and len(w) >= 4 and not (len(w) == 6 and w.isdigit())]
        rare = rare or ranked[-50:]
        surface = self._surface_forms(normalise)
        r = self.random
        shapes = (("very",), ("common",), ("rare",), ("order",), ("very", "common"), ("common", "rare"),
                  ("very", "very"), ("common", "common"), ("very", "common", "rare"), ("very", "common", "common"))
        out = []
        for i in range(n):
            words = []
            for kind in shapes[i % len(shapes)]:
                if kind == "order":
                    words.append(r.choice(orders))
                    continue
                word = r.choice({"very": very, "common": common, "rare": rare}[kind])
                words.append(surface.get(word, word))
            text = " ".join(words)
            if r.random() < 0.5:
                text = _strip_accents(text)
            if r.random() < 0.2:
                text = text.capitalize()
            out.append(text)
        return out

    def _surface_forms(self, normalise) -> dict[str, str]:
        """normalised word -> how it is written in the templates (with its accents), to type it as people do."""
        forms: dict[str, str] = {}
        for source in (*INCOMING, *OUTGOING, *PRIVATE, *FILLER, *FIRST_NAMES, *SURNAMES, *CITIES, *PRODUCTS,
                       *WEEKDAYS, *PAYMENTS, *CARRIERS):
            for piece in re.split(r"[\W_]+", re.sub(r"\{\w+\}", " ", source)):
                if piece:
                    for word in normalise(piece):
                        forms.setdefault(word, piece.lower())
        return forms


# -- HTTP ---------------------------------------------------------------------------------------------


def checked(url: str, method: str, path: str, body: object = None, token: str | None = None,
            expect: tuple[int, ...] = (200, 201)) -> dict:
    """One request that must answer one of ``expect`` (a 503 or a refused connection is tried again, 3 times)."""
    for attempt in range(4):
        status, answer = call(url, method, path, body, token=token)
        if status in expect and isinstance(answer, dict):
            return answer
        if status not in (0, 503) or attempt == 3:
            raise BenchFailure(f"{method} {path} answered {status}: {json.dumps(answer)[:400]}")
        time.sleep(1.0)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


def _lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (decimal escapes for everything but plain printable ASCII)."""
    out = []
    for b in data:
        out.append(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def wrk_script(requests: Sequence[Request], headers: dict[str, str]) -> str:
    """A wrk Lua script sending ``requests`` in turn (each wrk thread from its own offset)."""
    lines = ["local reqs = {"]
    for r in requests:
        lines.append(f"  {{{_lua_string(r.method.encode())}, {_lua_string(r.path.encode())}, "
                     f"{_lua_string(r.body) if r.body is not None else 'nil'}}},")
    lines.append("}")
    lines.append("local headers = {")
    for name, value in headers.items():
        lines.append(f"  [{_lua_string(name.encode())}] = {_lua_string(value.encode())},")
    lines.append("}")
    lines.append("""
local counter = 0
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
function init(args)
  counter = (tid or 1) * 7919
end
function request()
  counter = counter + 1
  local r = reqs[(counter % #reqs) + 1]
  return wrk.format(r[1], r[2], headers, r[3])
end
""")
    return "\n".join(lines)


def run_requests(base_url: str, requests: Sequence[Request], connections: int, duration_s: float, kind: str,
                 token: str | None = None, rate: float | None = None) -> LoadResult:
    """Closed loop, keep-alive, ``requests`` in turn (wrk with a Lua script, else threads of http.client); with a
    ``rate`` (requests per second, all connections together), paced instead: see :func:`_run_threads`."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if any(r.body is not None for r in requests):
        headers["Content-Type"] = "application/json"
    if kind == "wrk" and rate is None:
        return _run_wrk(base_url, requests, headers, connections, duration_s)
    return _run_threads(base_url, requests, headers, connections, duration_s, rate)


def _run_wrk(base_url: str, requests: Sequence[Request], headers: dict[str, str], connections: int,
             duration_s: float) -> LoadResult:
    threads = max(1, min(connections, 2))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-messaging-", delete=False) as f:
        f.write(wrk_script(requests, headers))
        script = f.name
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(round(duration_s))}s", "--latency",
                              "--timeout", "10s", "-s", script, base_url], capture_output=True, text=True,
                             timeout=duration_s + 60)
    finally:
        os.unlink(script)  # it holds an access token
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise BenchFailure(f"wrk failed ({out.returncode}): {(out.stderr or text)[:600]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return LoadResult(
        url=base_url, connections=connections,
        duration_s=_ms(re.search(r"requests in ([\d.]+\w+)", text)[1]) / 1e3,
        requests=int(re.search(r"(\d+) requests in", text)[1]),
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1]),
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1]),
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(x) for x in sock.groups()) if sock else 0,
        loadgen=f"{wrk_version()} -t{threads} (Lua script)",
    )


def _run_threads(base_url: str, requests: Sequence[Request], headers: dict[str, str], connections: int,
                 duration_s: float, rate: float | None = None) -> LoadResult:
    """Closed loop: each connection sends its next request as soon as the last one is answered, so at c
    connections the mean latency is c / throughput (Little's law) whatever the server does. Paced (``rate``):
    request n is due at start + n / rate, on connection n mod c, and its latency counts from when it was due
    (a request that waited for its connection waited for the server: no coordinated omission)."""
    parts = urlsplit(base_url)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: list[Counter] = [Counter() for _ in range(connections)]
    errors = [0] * connections
    barrier = threading.Barrier(connections + 1)
    window = [0.0, 0.0]  # start, stop (perf_counter)

    def next_start(i: int, n: int) -> float | None:
        if rate is None:
            now = time.perf_counter()
            return now if now < window[1] else None
        due = window[0] + (n * connections + i) / rate
        if due >= window[1]:
            return None
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        return due

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        k = i * 7919
        barrier.wait()
        n = 0
        while (t0 := next_start(i, n)) is not None:
            n += 1
            r = requests[k % len(requests)]
            k += 1
            try:
                conn.request(r.method, r.path, body=r.body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                continue
            latencies[i].append((time.perf_counter() - t0) * 1e3)
            statuses[i][response.status] += 1
        conn.close()

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in workers:
        t.start()
    begin = window[0] = time.perf_counter()
    window[1] = begin + duration_s
    barrier.wait()
    for t in workers:
        t.join(duration_s + 30)
    elapsed = time.perf_counter() - begin
    all_lat = sorted(x for lat in latencies for x in lat)
    merged = sum(statuses, Counter())
    return LoadResult(
        url=base_url, connections=connections, duration_s=elapsed, requests=len(all_lat),
        rps=len(all_lat) / elapsed, p50_ms=percentile(all_lat, 50), p99_ms=percentile(all_lat, 99),
        non_2xx=sum(n for code, n in merged.items() if not 200 <= code < 400), errors=sum(errors),
        loadgen=f"python http.client x{connections} threads" + (f", paced at {rate:g} req/s" if rate else ""),
        statuses={str(k): v for k, v in merged.items()},
    )


@contextlib.contextmanager
def profiled(platform: Platform | None, name: str) -> Iterator[None]:
    """``py-spy record`` of the messaging service, its relay and the gateway meanwhile, when BENCH_MESSAGING_PROFILE
    names a directory (collapsed stacks, one file per process)."""
    directory = os.environ.get("BENCH_MESSAGING_PROFILE")
    if not directory or platform is None:
        yield
        return
    os.makedirs(directory, exist_ok=True)
    spies = [start_py_spy(platform.children[p].pid, os.path.join(directory, f"{name}-{p}.txt"))
             for p in ("messaging", "gateway", "messaging-relay")]
    try:
        yield
    finally:
        for spy in spies:
            stop_py_spy(spy)


def measured(what: str, base_url: str, requests: Sequence[Request], connections: int, duration_s: float,
             kind: str, token: str | None = None, platform: Platform | None = None, name: str = "",
             extra: dict[str, Callable[[], set[int]]] | None = None, rate: float | None = None) -> dict:
    """run_requests, logged, summarised; any non-2xx answer or socket error fails the scenario (the first one asked
    again to show it). With the ``platform``: the CPU milliseconds each of its processes spent per request
    meanwhile (``cpu_ms_per_request``: what a request costs the machine, whatever else shares it), and of each
    group of ``extra`` processes (PostgreSQL's backends per database, the broker: :func:`server_groups`), and
    under py-spy when asked (:func:`profiled`, ``name`` in the file names)."""
    pids = {n: proc.pid for n, proc in platform.children.items()} if platform is not None else {}
    before = {n: cpu_seconds(pid) for n, pid in pids.items()}
    groups = dict(extra or {}) if platform is not None else {}
    group_before = {n: {pid: cpu_seconds(pid) for pid in pids_of()} for n, pids_of in groups.items()}
    with profiled(platform, f"{name}-{what}-c{connections}"):
        r = run_requests(base_url, requests, connections, duration_s, kind, token, rate)
    used = {n: cpu_seconds(pid) - before[n] for n, pid in pids.items()}
    for n, pids_of in groups.items():  # a backend gone meanwhile: its CPU is lost (0); one new counts whole
        used[n] = sum(max(0.0, cpu_seconds(pid) - group_before[n].get(pid, 0.0))
                      for pid in set(group_before[n]) | pids_of())
    label = f"{what} paced" if rate else what
    log(f"{label:<8} c={connections:<3} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
        f"non-2xx {r.non_2xx}  socket errors {r.errors}")
    if r.non_2xx or r.errors or not r.requests:
        sample = requests[0]
        status, answer = call(base_url, sample.method, sample.path,
                              json.loads(sample.body) if sample.body else None, token=token)
        raise BenchFailure(f"{what} at c={connections}: {r.non_2xx} non-2xx and {r.errors} socket errors of "
                           f"{r.requests} (one asked again answers {status}: {json.dumps(answer)[:300]})")
    summary = r.summary()
    if rate:
        summary["paced_rate"] = rate
    if used:
        per = {n: round(1e3 * v / r.requests, 2) for n, v in sorted(used.items(), key=lambda kv: -kv[1])}
        summary["cpu_ms_per_request"] = {n: v for n, v in per.items() if v >= 0.05}
        summary["cpu_ms_per_request_total"] = round(sum(per.values()), 2)
    return summary


MESSAGING_OWN = ("messaging", "messaging-relay", "postgresql messaging")


def server_groups(db_env: dict[str, str]) -> dict[str, Callable[[], set[int]]]:
    """The servers' processes measured beside the platform's: each service's PostgreSQL database's backends
    (PostgreSQL only) and the whole broker."""
    groups: dict[str, Callable[[], set[int]]] = {}
    for service in SERVICE_NAMES:
        url = db_env.get(f"{env_prefix(service)}_DATABASE_URL")
        if url:
            groups[f"postgresql {service}"] = backend_pids([url.rsplit("/", 1)[1]])
    groups["rabbitmq (the whole broker)"] = broker_pids
    return groups


def ceiling_without_messaging(send: dict, ping: dict) -> dict | None:
    """The most sends per second the cores could give if messaging (its service, its relay and its database)
    cost nothing: every other measured process's CPU per send (the gateway, privacy's audit ingest, identity,
    the other databases, the broker) is work a send costs whatever messaging does; over the ping beside it. An
    upper bound: the load generator and anything not measured are left out of that rest."""
    per = send.get("cpu_ms_per_request")
    if not per:
        return None
    rest = sum(v for n, v in per.items() if n not in MESSAGING_OWN)
    cores = os.cpu_count() or 1
    rps = round(cores * 1000 / rest, 1) if rest > 0 else None
    return {"rest_cpu_ms_per_send": round(rest, 2), "cores": cores, "sends_per_s": rps,
            "over_ping": ratio(rps, ping["rps"]) if rps else None}


# -- the help desk, through the gateway --------------------------------------------------------------


@dataclass
class Staff:
    id: str
    email: str
    token: str = ""


@dataclass
class Conversation:
    id: str
    customer_id: str
    assignee_id: str


@dataclass
class Desk:
    admin_token: str
    a: Staff
    b: Staff
    supervisors: list[Staff]
    team_id: str
    customers: list[str]
    conversations: list[Conversation]
    big: Conversation
    seeded: dict[str, list[str]] = field(default_factory=dict)  # conversation id -> seeded message ids, in order
    big_bodies: dict[str, str] = field(default_factory=dict)  # message id -> body, of the big conversation

    def of(self, staff: Staff) -> list[Conversation]:
        return [c for c in self.conversations if c.assignee_id == staff.id]


def patient_login(url: str, email: str, timeout: float = 60.0) -> dict:
    """Log in, waiting as a well-behaved client does when identity sheds the login (503 service-busy: its
    bcrypt queue is full, ``retry_after`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = call(url, "POST", "/v1/auth/login", {"email": email, "password": STAFF_PASSWORD})
        if status == 200 and isinstance(answer, dict):
            return answer
        busy = status == 503 and isinstance(answer, dict) and answer.get("type", "").endswith("/service-busy")
        if not busy or time.monotonic() > deadline:
            raise BenchFailure(f"POST /v1/auth/login as {email} answered {status}: {json.dumps(answer)[:300]}")
        time.sleep(float(answer.get("retry_after") or 1))


def build_desk(url: str, supervisors: int, customers: int, conversations: int, clients: int = 8) -> Desk:
    """The first admin creates the staff, the customers, one team and the conversations (all through the
    gateway); every staff member logs in."""
    admin = wait_for_admin(url)["access_token"]

    def user(n: int, role: str) -> Staff:
        payload = {**staff_payload(n), "role": role}
        created = checked(url, "POST", "/v1/users", payload, token=admin, expect=(201,))
        return Staff(created["id"], payload["email"])

    def customer(n: int) -> str:
        r = random.Random(n)
        name = f"{r.choice(FIRST_NAMES)} {r.choice(SURNAMES)} {r.choice(SURNAMES)}"
        email = f"cliente.{n}.{uuid.uuid4().hex[:8]}@example.com.br"
        return checked(url, "POST", "/v1/customers", {"full_name": name, "email": email}, token=admin,
                       expect=(201,))["id"]

    with ThreadPoolExecutor(clients) as pool:
        staff = list(pool.map(lambda n: user(n, "attendant" if n < 2 else "supervisor"), range(2 + supervisors)))
        customer_ids = list(pool.map(customer, range(customers)))
        for person, tokens in zip(staff, pool.map(lambda s: patient_login(url, s.email), staff), strict=True):
            person.token = tokens["access_token"]
    a, b, sups = staff[0], staff[1], staff[2:]
    team = checked(url, "POST", "/v1/teams", {"name": "Atendimento", "member_ids": [s.id for s in staff]},
                   token=admin, expect=(201,))["id"]
    r = random.Random(len(customer_ids))

    def conversation(n: int) -> Conversation:
        assignee = a if n == 0 or r.random() < 0.7 else b
        body = {"customer_id": customer_ids[n % len(customer_ids)], "channel": r.choice(
            ("whatsapp", "email", "web", "phone")), "team_id": team, "assignee_id": assignee.id}
        opened = checked(url, "POST", "/v1/conversations", body, token=admin, expect=(201,))
        return Conversation(opened["id"], body["customer_id"], assignee.id)

    with ThreadPoolExecutor(clients) as pool:
        convs = list(pool.map(conversation, range(conversations)))
    return Desk(admin, a, b, sups, team, customer_ids, convs, convs[0])


# -- seeding M messages the way the send path writes them ----------------------------------------------


SEED_BATCH = 10_000  # messages per transaction (a running service on SQLite waits for the write lock meanwhile)
SEED_DAYS = 60  # the seeded messages span the last SEED_DAYS days, in position order


def seed_messages(platform: Platform, desk: Desk, text: HelpDeskText, total: int, big: int) -> dict:
    """``total`` messages written as messaging's send path writes them, in batches, straight into its database
    (see the module docstring, 1.); fills ``desk.seeded``, ``desk.big_bodies`` and ``text.count``.

    Two stages overlap: a thread prepares each batch (bodies, seals, the aggregate's events, the words' keyed
    hashes) while this one writes the previous batch (the events first: their positions place the rows)."""
    import queue

    import sqlalchemy as sa
    from upgestao_kernel.config import load_settings
    from upgestao_kernel.db import create_engine
    from upgestao_kernel.events import new_id
    from upgestao_kernel.schema import events
    from upgestao_kernel.vault import load_keys
    from upgestao_messaging.adapters.projections import Insert, Update, changes
    from upgestao_messaging.adapters.search_index import load_search_key, search_terms, signature
    from upgestao_messaging.adapters.tables import TABLES, conversations
    from upgestao_messaging.domain.messages import Message
    from upgestao_messaging.domain.search import TermHasher, normalise_words

    environ = platform.environment("messaging")
    settings = load_settings("messaging", environ)
    vault = _key_caching_vault()(*load_keys(settings, environ))
    hasher = TermHasher(load_search_key(settings, environ))
    engine = create_engine(settings.database_url, pool_size=1)
    if engine.dialect.name == "sqlite":  # this connection's page cache only (the service's own are untouched)
        sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA cache_size = -262144").close())
    tables = {t.name: t for t in TABLES}
    r = text.random
    others = [c for c in desk.conversations if c.id != desk.big.id]
    staff = {desk.a.id: desk.a, desk.b.id: desk.b}
    start = datetime.now(UTC) - timedelta(days=SEED_DAYS)
    step = timedelta(days=SEED_DAYS) / total
    desk.seeded = {c.id: [] for c in desk.conversations}
    with engine.begin() as conn:  # every customer's data key exists (created by the vault, as a first seal does)
        for customer_id in {c.customer_id for c in desk.conversations}:
            vault.encrypt(conn, customer_id, "body", "-")

    def prepare(batch: range) -> tuple[list[dict], dict[str, tuple[str, Conversation, list[str]]]]:
        event_rows, meta, hashed = [], {}, {}
        for n in batch:
            conv = desk.big if r.random() < big / total else r.choice(others)
            incoming = r.random() < 0.45
            private = not incoming and r.random() < 0.05
            direction = "incoming" if incoming else "outgoing"
            author = staff[conv.assignee_id]
            body = text.body(direction, private)
            message_id = str(uuid.uuid4())
            words = normalise_words(body)
            text.observe(words)
            for w in words:
                if w not in hashed:  # the same HMAC as the send path's, once per distinct word of the batch
                    hashed[w] = hasher.hash(w)
            meta[message_id] = (body, conv, [hashed[w] for w in words])
            message = Message.create(
                message_id, conversation_id=conv.id, chat_id=None, customer_id=conv.customer_id,
                author_id=author.id, direction=direction, private=private, key_subject_id=conv.customer_id,
                sealed_body=vault.encrypt(None, conv.customer_id, "body", body), attachment_ids=[],
                client_message_id=None)  # the customer's key is cached: no connection needed
            (new,) = message.collect()
            event_rows.append({
                "event_id": new_id(), "stream_id": message.stream_id, "version": 1, "type": new.type,
                "occurred_at": start + step * n, "actor_id": author.id, "actor_role": "attendant",
                "correlation_id": None, "causation_id": None, "data": dict(new.data)})
        return event_rows, meta

    prepared: queue.Queue = queue.Queue(maxsize=2)

    def producer() -> None:
        try:
            for first in range(0, total, SEED_BATCH):
                prepared.put(prepare(range(first, min(total, first + SEED_BATCH))))
            prepared.put(None)
        except BaseException as exc:  # handed to the writer, which raises it
            prepared.put(exc)

    counts: Counter[str] = Counter()
    t0 = time.monotonic()
    thread = threading.Thread(target=producer, name="seed-prepare", daemon=True)
    thread.start()
    try:
        while (item := prepared.get(timeout=600)) is not None:
            if isinstance(item, BaseException):
                raise item
            event_rows, meta = item
            with engine.begin() as conn:
                positions = {row.event_id: row.position for row in conn.execute(
                    events.insert().returning(events.c.position, events.c.event_id), event_rows)}
                rows: dict[str, list[dict]] = {"messages": [], "message_versions": []}
                last: dict[str, dict] = {}
                terms = []
                for row in event_rows:
                    envelope = _envelope(row, positions[row["event_id"]])
                    for change in changes(envelope):  # the projection's own row changes
                        if isinstance(change, Insert):
                            rows[change.table].append(dict(change.row))
                        elif isinstance(change, Update) and change.table == "conversations":
                            last[change.where["id"]] = dict(change.values)
                        else:
                            raise BenchFailure(f"seeding: an unexpected row change {change!r}")
                    message_id = envelope.stream_id.split("-", 1)[1]
                    body, conv, hashes = meta[message_id]
                    desk.seeded[conv.id].append(message_id)
                    if conv is desk.big:
                        desk.big_bodies[message_id] = body
                    bits = signature(hashes)
                    terms.extend((h, envelope.position, message_id, "conversation", conv.id, conv.customer_id, bits)
                                 for h in hashes)
                for name, table_rows in rows.items():
                    conn.execute(tables[name].insert(), table_rows)
                terms.sort()  # along the primary key (term, position): fewer pages touched
                _insert_terms(conn, search_terms, terms)
                for conversation_id, values in last.items():
                    conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(**values))
            counts["search_rows"] += len(terms)
            counts["messages"] += len(event_rows)
        if engine.dialect.name == "postgresql":  # as autovacuum would soon after such an insert
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        seconds = time.monotonic() - t0
        sizes = database_sizes(engine)
    finally:
        thread.join(1)
        engine.dispose()
    return {"messages": counts["messages"], "search_rows": counts["search_rows"],
            "big_conversation": len(desk.seeded[desk.big.id]), "seconds": round(seconds, 1),
            "messages_per_s": round(counts["messages"] / seconds), **sizes}


def database_sizes(engine) -> dict[str, float]:
    """Messaging's database and its search index (the table and its indexes), in MiB."""
    from upgestao_kernel.db import read_only

    with engine.connect() as conn:
        conn = read_only(conn)
        if engine.dialect.name == "postgresql":
            total, index = conn.exec_driver_sql(
                "SELECT pg_database_size(current_database()), pg_total_relation_size('search_terms')").one()
        else:
            total = (conn.exec_driver_sql("PRAGMA page_count").scalar_one()
                     * conn.exec_driver_sql("PRAGMA page_size").scalar_one())
            try:  # dbstat: compiled into most SQLite builds, not all
                index = conn.exec_driver_sql("SELECT sum(pgsize) FROM dbstat WHERE name = 'search_terms' OR name "
                                             "LIKE 'ix_search_terms%' OR name LIKE 'sqlite_autoindex_search_terms%'"
                                             ).scalar_one()
            except Exception:  # noqa: BLE001 - informative only
                index = None
        conn.rollback()
    return {"database_mib": round(total / MiB, 1),
            "search_index_mib": round(index / MiB, 1) if index is not None else None}


def _insert_terms(conn, table, rows: list[tuple]) -> None:
    """The search index's rows, plain strings and integers: straight to the driver (SQLAlchemy's per-row parameter
    processing would cost more than the insert), in the seeding's transaction."""
    columns = ", ".join(c.name for c in table.columns)
    if conn.dialect.name == "postgresql":  # COPY: ids and hex digests, nothing to escape
        buffer = io.StringIO("".join("\t".join(map(str, row)) + "\n" for row in rows))
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.copy_expert(f"COPY {table.name} ({columns}) FROM STDIN", buffer)
    else:
        marks = ", ".join("?" for _ in table.columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)


def _key_caching_vault():
    from upgestao_kernel.vault import Vault

    class KeyCachingVault(Vault):
        """The kernel's vault (its ciphertext format, its key creation), each customer's data key unwrapped
        once for the whole seeding instead of once per message."""

        def __init__(self, *args) -> None:
            super().__init__(*args)
            self._keys: dict[str, bytes] = {}

        def _data_key_for_write(self, conn, subject_id: str) -> bytes:
            if subject_id not in self._keys:
                self._keys[subject_id] = super()._data_key_for_write(conn, subject_id)
            return self._keys[subject_id]

    return KeyCachingVault


def _envelope(row: dict, position: int):
    from upgestao_kernel.events import Actor, EventEnvelope

    return EventEnvelope(event_id=row["event_id"], stream_id=row["stream_id"], version=row["version"],
                         type=row["type"], occurred_at=row["occurred_at"],
                         actor=Actor(id=row["actor_id"], role=row["actor_role"]), correlation_id=None,
                         causation_id=None, data=row["data"], position=position)


# -- WebSocket push ------------------------------------------------------------------------------------


class PushClient:
    """One WebSocket to GET /v1/stream (websocket-client), authenticated by its first message; a reader
    thread records every ``message.created`` it receives: (message id, body, perf_counter at receipt)."""

    def __init__(self, base_url: str, token: str, name: str) -> None:
        import websocket  # websocket-client

        self.name = name
        self.received: list[tuple[str, str | None, float]] = []
        self.other: Counter[str] = Counter()
        self.closed: str | None = None
        ws_url = base_url.replace("http://", "ws://", 1) + STREAM
        self.ws = websocket.create_connection(ws_url, timeout=HTTP_TIMEOUT_S, origin=base_url)
        self.ws.send(json.dumps({"type": "auth", "token": token}))
        self._thread = threading.Thread(target=self._read, name=f"ws-{name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import websocket

        while True:
            try:
                frame = self.ws.recv()
            except (websocket.WebSocketException, OSError) as exc:
                self.closed = self.closed or f"{type(exc).__name__}: {exc}"
                return
            at = time.perf_counter()
            if not frame:
                self.closed = self.closed or "closed by the server"
                return
            try:
                message = json.loads(frame)
            except ValueError:
                self.other["not-json"] += 1
                continue
            kind = message.get("type")
            if kind == "message.created":
                data = message.get("data") or {}
                self.received.append((data.get("id"), data.get("body"), at))
            else:
                self.other[str(kind)] += 1

    def close(self) -> None:
        self.closed = self.closed or "closed by the bench"
        with contextlib.suppress(Exception):
            self.ws.close()
        self._thread.join(5)


@contextlib.contextmanager
def push_clients(base_url: str, staff: Sequence[Staff]) -> Iterator[list[PushClient]]:
    clients: list[PushClient] = []
    try:
        with ThreadPoolExecutor(10) as pool:
            clients.extend(pool.map(lambda s: PushClient(base_url, s.token, s.id), staff))
        yield clients
    finally:
        for c in clients:
            c.close()


def wait_ready(clients: Sequence[PushClient], url: str, sender: Staff, conversation: Conversation,
               text: HelpDeskText, timeout: float = 60.0) -> None:
    """Send probe messages until every client has received one (the sockets are authenticated and the
    gateway's stream consumer is reading): the measurement starts on a warm path."""
    deadline = time.monotonic() + timeout
    while True:
        sent = _send(url, sender, conversation, text)[0]
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            if all(any(m == sent for m, _, _ in c.received) for c in clients):
                return
            dead = [c for c in clients if c.closed]
            if dead:
                raise BenchFailure(f"{len(dead)} WebSocket clients closed: {dead[0].closed}")
            time.sleep(0.05)
        if time.monotonic() > deadline:
            missing = sum(1 for c in clients if not any(m == sent for m, _, _ in c.received))
            raise BenchFailure(f"{missing} of {len(clients)} WebSocket clients received no message.created "
                               f"within {timeout:.0f} s (other frames: {sum((c.other for c in clients), Counter())})")


def _send(url: str, sender: Staff, conversation: Conversation, text: HelpDeskText,
          conn: http.client.HTTPConnection | None = None) -> tuple[str, str, float, float, str]:
    """POST one outgoing message; (its id, its body, perf_counter just before the request was written and when
    the answer was read, its created_at)."""
    body = text.body("outgoing")
    payload = json.dumps({"body": body, "direction": "outgoing"}).encode()
    headers = {"Authorization": f"Bearer {sender.token}", "Content-Type": "application/json",
               "Accept": "application/json"}
    parts = urlsplit(url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)
    try:
        t0 = time.perf_counter()
        conn.request("POST", f"/v1/conversations/{conversation.id}/messages", body=payload, headers=headers)
        response = conn.getresponse()
        answer = response.read().decode("utf-8", "replace")
        t1 = time.perf_counter()
    finally:
        if own:
            conn.close()
    if response.status != 201:
        raise BenchFailure(f"POST /v1/conversations/{{id}}/messages answered {response.status}: {answer[:300]}")
    message = json.loads(answer)
    return message["id"], body, t0, t1, message["created_at"]


def measure_push(url: str, sender: Staff, conversation: Conversation, clients: Sequence[PushClient],
                 text: HelpDeskText, count: int, interval_s: float, settle_s: float = 10.0) -> dict:
    """``count`` sends one every ``interval_s`` (one keep-alive connection), then every client's receipts:
    latency = receipt - the moment before the POST was written; each message must reach every client once,
    with the body that was sent. Its stages: the POST's answer, the message's created_at (messaging's clock: the
    same machine's) to each receipt, and the spread of one message's receipts over the clients."""
    for c in clients:
        c.received.clear()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S)
    sent: dict[str, tuple[str, float]] = {}
    answered, created = [], {}
    wall_minus_perf = time.time() - time.perf_counter()
    try:
        due = time.perf_counter()
        for _ in range(count):
            message_id, body, t0, t1, created_at = _send(url, sender, conversation, text, conn)
            sent[message_id] = (body, t0)
            answered.append((t1 - t0) * 1e3)
            created[message_id] = datetime.fromisoformat(created_at).timestamp() - wall_minus_perf
            due += interval_s
            time.sleep(max(0.0, due - time.perf_counter()))
    finally:
        conn.close()
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and not all(
            len({m for m, _, _ in c.received if m in sent}) == len(sent) for c in clients):
        time.sleep(0.05)
    latencies, missing, duplicates, wrong_body = [], 0, 0, 0
    after_created, receipts = [], {m: [] for m in sent}
    for c in clients:
        seen: Counter[str] = Counter()
        for message_id, body, at in c.received:
            if message_id not in sent:
                continue
            seen[message_id] += 1
            if seen[message_id] > 1:
                continue
            if body != sent[message_id][0]:
                wrong_body += 1
            latencies.append((at - sent[message_id][1]) * 1e3)
            after_created.append((at - created[message_id]) * 1e3)
            receipts[message_id].append(at)
        missing += sum(1 for m in sent if m not in seen)
        duplicates += sum(n - 1 for n in seen.values() if n > 1)
    closed = [c.closed for c in clients if c.closed]
    if missing or duplicates or wrong_body or closed:
        raise BenchFailure(f"push: {missing} deliveries missing, {duplicates} duplicated, {wrong_body} with another "
                           f"body, {len(closed)} sockets closed ({closed[:1]}) of {len(sent)} messages x "
                           f"{len(clients)} clients")
    latencies.sort()

    def spread(values: list[float]) -> dict:
        values = sorted(values)
        return {"p50_ms": round(percentile(values, 50), 2), "p99_ms": round(percentile(values, 99), 2)}

    return {
        "clients": len(clients), "messages": len(sent), "deliveries": len(latencies),
        "interval_s": interval_s,
        "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(latencies[-1], 2),
        "stages": {"post_answered": spread(answered), "created_to_receipt": spread(after_created),
                   "receipts_spread_over_clients": spread([(max(t) - min(t)) * 1e3 for t in receipts.values()])},
    }


# -- messaging's outbox ------------------------------------------------------------------------------


class Outbox:
    """Messaging's outbox (events and audit records share it, in order): how many rows wait for its relay."""

    def __init__(self, platform: Platform) -> None:
        from upgestao_kernel.config import load_settings
        from upgestao_kernel.db import create_engine

        environ = platform.environment("messaging")
        self.engine = create_engine(load_settings("messaging", environ).database_url, pool_size=1)

    def unsent(self) -> int:
        import sqlalchemy as sa
        from upgestao_kernel.db import read_only
        from upgestao_kernel.schema import outbox

        with self.engine.connect() as conn:
            return read_only(conn).execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))).scalar_one()

    def drain(self, platform: Platform, what: str, timeout: float = 300.0) -> dict:
        """Wait until the relay has published everything (a measurement after this one starts on an empty queue);
        the backlog found and how long it took."""
        backlog, t0 = self.unsent(), time.monotonic()
        while (left := self.unsent()) and time.monotonic() - t0 < timeout:
            platform.check_alive()
            time.sleep(0.25)
        seconds = round(time.monotonic() - t0, 1)
        if left:
            raise BenchFailure(f"messaging's outbox still holds {left} rows {timeout:.0f} s after {what}")
        if backlog:
            log(f"messaging's outbox after {what}: {backlog} rows waited, published in {seconds} s")
        return {"backlog": backlog, "seconds": seconds}

    def close(self) -> None:
        self.engine.dispose()


# -- memory, databases ------------------------------------------------------------------------------


def settle(platform: Platform, window_s: float = 0.5, busy: float = 0.1, timeout_s: float = 60.0) -> float:
    """Wait until the platform's processes together use under ``busy`` of a core over ``window_s`` (the
    backlog of a saturating run, privacy's audit ingest above all, worked off); how long that took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        pids = [proc.pid for proc in platform.children.values() if proc.poll() is None]
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(window_s)
        if sum(cpu_seconds(pid) for pid in pids) - before < busy * window_s:
            break
    return round(time.monotonic() - t0, 1)


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the peak) of one process, in MiB (/proc/<pid>/status)."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = round(int(rest.split()[0]) * 1024 / MiB, 1)
    return {"rss_mib": values["VmRSS"], "peak_rss_mib": values["VmHWM"]}


@contextlib.contextmanager
def databases(kind: str, tag: str) -> Iterator[dict[str, str]]:
    """Nothing for SQLite (every service's local default); a fresh PostgreSQL database per service otherwise
    (``<SERVICE>_DATABASE_URL``), dropped afterwards."""
    if kind == "sqlite":
        yield {}
        return
    if kind != "postgresql":
        raise BenchFailure(f"BENCH_MESSAGING_DATABASES: sqlite or postgresql, not {kind!r}")
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    dsn = admin.get_dsn_parameters()
    user, host, port = dsn.get("user", "postgres"), dsn.get("host", "127.0.0.1"), dsn.get("port", "5432")
    created: list[str] = []
    try:
        env = {}
        for service in SERVICE_NAMES:
            name = f"bench_messaging_{service.replace('-', '_')}_{tag}"
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            created.append(name)
            env[f"{env_prefix(service)}_DATABASE_URL"] = f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
        yield env
    finally:
        admin.close()
        for name in created:
            try:  # a fresh connection: the server may have restarted meanwhile (another suite's chaos)
                query(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)
                # privacy's runtime role (the platform's, named after its database): the platform's own drop,
                # at its stop, fails while the database still holds the role's grants
                query(PG_ADMIN, f'DROP ROLE IF EXISTS "{name}_runtime"', autocommit=True)
            except psycopg2.Error as exc:
                log(f"WARNING: database {name} (or its runtime role) not dropped: {str(exc).strip()[:200]}")


# -- one database -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    messages: int
    big: int
    conversations: int
    customers: int
    supervisors: int
    listeners: int
    send_conns: list[int]
    read_conns: list[int]
    push_messages: int
    push_interval_s: float
    paced_load: float  # the paced send's rate, as a fraction of the closed loop's at c=10 (0: none)
    duration_s: float
    warmup_s: float
    seed: int
    start_s: float
    loadgen: str

    @classmethod
    def from_env(cls) -> Plan:
        def levels(name: str, default: str) -> list[int]:
            return [int(x) for x in (os.environ.get(name) or default).split(",") if x.strip()]

        plan = cls(
            messages=env_int("BENCH_MESSAGING_MESSAGES", 100_000), big=env_int("BENCH_MESSAGING_BIG", 20_000),
            conversations=env_int("BENCH_MESSAGING_CONVERSATIONS", 200),
            customers=env_int("BENCH_MESSAGING_CUSTOMERS", 50),
            supervisors=env_int("BENCH_MESSAGING_SUPERVISORS", 50),
            listeners=env_int("BENCH_MESSAGING_LISTENERS", 5),
            send_conns=levels("BENCH_MESSAGING_SEND_CONNS", "10,50"),
            read_conns=levels("BENCH_MESSAGING_READ_CONNS", "1,10"),
            push_messages=env_int("BENCH_MESSAGING_PUSH_MESSAGES", 60),
            push_interval_s=env_float("BENCH_MESSAGING_PUSH_INTERVAL_S", 0.2),
            paced_load=env_float("BENCH_MESSAGING_PACED_LOAD", 0.5),
            duration_s=env_float("BENCH_DURATION_S", 8.0), warmup_s=env_float("BENCH_WARMUP_S", 2.0),
            seed=env_int("BENCH_MESSAGING_SEED", 13), start_s=env_float("BENCH_MESSAGING_START_S", 240.0),
            loadgen=os.environ.get("BENCH_LOADGEN") or ("wrk" if wrk_available() else "python"),
        )
        if (not 0 < plan.big < plan.messages or plan.conversations < 2
                or not 1 <= plan.listeners <= plan.supervisors + 1):
            raise BenchFailure("BENCH_MESSAGING_*: need 0 < BIG < MESSAGES, 2+ conversations, 1 <= LISTENERS <= "
                               "SUPERVISORS + 1")
        return plan


def search_requests(queries: Sequence[str]) -> list[Request]:
    return [Request("GET", f"/v1/messages/search?q={quote(q)}&limit=20") for q in queries]


def page_requests(desk: Desk, n: int, r: random.Random) -> list[Request]:
    """Pages of 50 of the big conversation: the latest one for 1 in 5, else the 50 before a random message."""
    ids = desk.seeded[desk.big.id][50:]
    base = f"/v1/conversations/{desk.big.id}/messages?limit=50"
    return [Request("GET", base if i % 5 == 0 else f"{base}&before={r.choice(ids)}") for i in range(n)]


def send_requests(desk: Desk, text: HelpDeskText, n: int) -> list[Request]:
    """New outgoing messages of A, A's conversations in turn, every body different."""
    mine = desk.of(desk.a)
    return [Request("POST", f"/v1/conversations/{mine[i % len(mine)].id}/messages",
                    json.dumps({"body": text.body("outgoing"), "direction": "outgoing"}).encode())
            for i in range(n)]


def check_page(url: str, desk: Desk) -> dict:
    """The big conversation's latest page and one deep page read back, through the gateway, exactly the ids and
    bodies seeded (the seal, the rows and the positions are the send path's)."""
    ids = desk.seeded[desk.big.id]
    base = f"/v1/conversations/{desk.big.id}/messages?limit=50"
    for path, expected in ((base, ids[-50:]), (f"{base}&before={ids[len(ids) // 2]}",
                                                ids[len(ids) // 2 - 50:len(ids) // 2])):
        items = checked(url, "GET", path, token=desk.a.token)["items"]
        got = [(item["id"], item["body"]) for item in items]
        if got != [(i, desk.big_bodies[i]) for i in expected]:
            raise BenchFailure(f"GET {path.split('?')[0]}?...: the page does not read back the seeded messages")
    return {"pages_checked": 2, "messages_checked": 100}


def check_search(url: str, desk: Desk, queries: Sequence[str], normalise) -> dict:
    """Each query once: every hit holds every word of the query (accents and case aside) and belongs to a
    conversation A sees; how many queries found something."""
    visible = {c.id for c in desk.of(desk.a)}
    found, hits = 0, []
    for q in queries:
        answer = checked(url, "GET", f"/v1/messages/search?q={quote(q)}&limit=20", token=desk.a.token)
        words = set(normalise(q))
        for item in answer["items"]:
            if item.get("conversation_id") not in visible:
                raise BenchFailure(f"search {q!r} answered a message of a conversation A may not see")
            if not words <= set(normalise(item.get("body") or "")):
                raise BenchFailure(f"search {q!r} answered a message without every word of the query")
        found += bool(answer["items"])
        hits.append(len(answer["items"]))
    return {"queries_checked": len(queries), "with_hits": found,
            "mean_hits_first_page": round(sum(hits) / len(hits), 1)}


def run_database(kind: str, plan: Plan) -> dict:
    """Everything measured on one database: figures, baseline, ratios, targets met."""
    load_before = load_average()
    tag = uuid.uuid4().hex[:8]
    figures: dict = {}
    baseline: dict = {"ping": {}}
    with (
        bench_vhost() as amqp_uri,
        tempfile.TemporaryDirectory(prefix="upgestao-bench-") as data_dir,
        databases(kind, tag) as db_env,
    ):
        platform = Platform(data_dir=data_dir, amqp_uri=amqp_uri, http_address=free_address(),
                            env={**PLATFORM_ENV, **db_env}, echo=log)
        started = time.monotonic()
        try:
            with started_platform(platform, plan.start_s), contextlib.closing(Outbox(platform)) as outbox:
                url = platform.url
                log(f"[{kind}] platform ready in {time.monotonic() - started:.1f} s at {url}; load generator "
                    f"{plan.loadgen}")
                t0 = time.monotonic()
                desk = build_desk(url, plan.supervisors, plan.customers, plan.conversations)
                log(f"[{kind}] desk ready in {time.monotonic() - t0:.1f} s: {2 + plan.supervisors} staff, "
                    f"{plan.customers} customers, {plan.conversations} conversations "
                    f"({len(desk.of(desk.a))} assigned to A)")
                from upgestao_messaging.domain.search import normalise_words

                text = HelpDeskText(plan.seed)
                figures["seed"] = seed_messages(platform, desk, text, plan.messages, plan.big)
                figures["seed"]["page_check"] = check_page(url, desk)
                figures["seed"]["search_check"] = check_search(url, desk, text.queries(40, normalise_words),
                                                               normalise_words)
                log(f"[{kind}] seeded {plan.messages} messages in {figures['seed']['seconds']} s; search check "
                    f"{figures['seed']['search_check']}")
                with ThreadPoolExecutor(4) as pool:  # fresh access tokens: what follows must not outlive them
                    for person, tokens in zip(staff := [desk.a, desk.b, *desk.supervisors],
                                              pool.map(lambda p: patient_login(url, p.email), staff), strict=True):
                        person.token = tokens["access_token"]
                r = random.Random(plan.seed)
                k = plan.loadgen
                servers = server_groups(db_env)
                levels = sorted(set(plan.send_conns) | set(plan.read_conns))

                # -- the baseline
                measured("ping", url, [Request("GET", PING)], 10, plan.warmup_s, k)
                for c in levels:
                    baseline["ping"][f"c{c}"] = measured("ping", url, [Request("GET", PING)], c, plan.duration_s,
                                                         k, None, platform, kind, servers)

                # -- a page of 50, search
                for name, requests in (("page", page_requests(desk, 500, r)),
                                       ("search", search_requests(text.queries(400, normalise_words)))):
                    measured(name, url, requests, 10, plan.warmup_s, k, desk.a.token)
                    figures[name] = {f"c{c}": measured(name, url, requests, c, plan.duration_s, k, desk.a.token,
                                                       platform, kind, servers) for c in plan.read_conns}
                platform.check_alive()
                figures["outbox_drain"] = {"after_reads": outbox.drain(platform, "the page and search runs")}

                # -- send, with L listeners on the stream
                listeners = [desk.a, *desk.supervisors[:plan.listeners - 1]]
                with push_clients(url, listeners) as sockets:
                    wait_ready(sockets, url, desk.a, desk.of(desk.a)[1], text)
                    requests = send_requests(desk, text, 2000)
                    measured("send", url, requests, 10, plan.warmup_s, k, desk.a.token)
                    figures["send"] = {f"c{c}": measured("send", url, requests, c, plan.duration_s, k,
                                                         desk.a.token, platform, kind, servers)
                                       for c in plan.send_conns}
                    figures["outbox_drain"]["after_send"] = outbox.drain(platform, "the send runs")
                    c10 = figures["send"].get("c10")
                    if c10 is not None and plan.paced_load > 0:  # latency below saturation, beside ping's at the rate
                        figures["settled_before_paced_s"] = settle(platform)
                        rate = round(plan.paced_load * c10["rps"], 1)
                        figures["send_paced"] = measured("send", url, requests, 10, plan.duration_s, "python",
                                                         desk.a.token, platform, kind, servers, rate)
                        figures["outbox_drain"]["after_paced_send"] = outbox.drain(platform, "the paced send")
                        baseline["ping_paced"] = measured("ping", url, [Request("GET", PING)], 10, plan.duration_s,
                                                          "python", None, platform, kind, servers, rate)
                    closed = [s.closed for s in sockets if s.closed]
                    if closed:
                        raise BenchFailure(f"{len(closed)} listeners closed during the sends: {closed[0]}")
                    figures["send"]["listeners"] = len(sockets)
                    figures["send"]["pushes_received"] = sum(len(s.received) for s in sockets)
                platform.check_alive()

                # -- push to S clients
                with push_clients(url, desk.supervisors) as sockets:
                    wait_ready(sockets, url, desk.a, desk.of(desk.a)[1], text)
                    figures["push"] = measure_push(url, desk.a, desk.of(desk.a)[1], sockets, text,
                                                   plan.push_messages, plan.push_interval_s)
                log(f"[{kind}] push to {len(desk.supervisors)} clients: p50 {figures['push']['p50_ms']} ms, "
                    f"p99 {figures['push']['p99_ms']} ms, max {figures['push']['max_ms']} ms")
                platform.check_alive()

                # -- memory after the run
                figures["memory"] = {name: memory(proc.pid) for name, proc in platform.children.items()
                                     if proc.poll() is None}
                figures["rss"] = figures["memory"]["messaging"]
                log(f"[{kind}] messaging RSS {figures['rss']['rss_mib']} MiB (peak {figures['rss']['peak_rss_mib']})")
        finally:
            platform.remove_broker_users()  # the vhost goes with bench_vhost; its users do not

    ratios = {
        "send/ping": {key: {"rps": ratio(f["rps"], baseline["ping"][key]["rps"]),
                            "p50": ratio(f["p50_ms"], baseline["ping"][key]["p50_ms"]),
                            "p99": ratio(f["p99_ms"], baseline["ping"][key]["p99_ms"])}
                      for key, f in figures["send"].items() if key.startswith("c")},
        **{f"{name}/ping": {key: {"p50": ratio(f["p50_ms"], baseline["ping"][key]["p50_ms"]),
                                  "p99": ratio(f["p99_ms"], baseline["ping"][key]["p99_ms"]),
                                  "rps": ratio(f["rps"], baseline["ping"][key]["rps"])}
                            for key, f in figures[name].items()} for name in ("page", "search")},
    }
    if "send_paced" in figures:
        ratios["send_paced/ping_paced"] = {"p50": ratio(figures["send_paced"]["p50_ms"],
                                                        baseline["ping_paced"]["p50_ms"]),
                                           "p99": ratio(figures["send_paced"]["p99_ms"],
                                                        baseline["ping_paced"]["p99_ms"])}
    top = f"c{max(plan.read_conns)}"
    c10 = figures["send"].get("c10")
    if c10 is not None:
        ratios["send_c10_ceiling_without_messaging"] = ceiling_without_messaging(c10, baseline["ping"]["c10"])
    meets = {
        "send_rps_over_ping_c10": None if c10 is None else ratios["send/ping"]["c10"]["rps"] >= TARGETS[
            "send_rps_over_ping_c10 >="],
        "send_p50_ms_c10": None if c10 is None else c10["p50_ms"] <= TARGETS["send_p50_ms_c10 <="],
        "send_p99_ms_c10": None if c10 is None else c10["p99_ms"] <= TARGETS["send_p99_ms_c10 <="],
        f"page_p99_ms_{top}": figures["page"][top]["p99_ms"] <= TARGETS["page_p99_ms <="],
        f"search_p99_ms_{top}": figures["search"][top]["p99_ms"] <= TARGETS["search_p99_ms <="],
        "push_p99_ms": figures["push"]["p99_ms"] <= TARGETS["push_p99_ms <="],
        "rss_mib": figures["rss"]["rss_mib"] <= TARGETS["rss_mib <="],
    }
    return {"figures": figures, "baseline": baseline, "ratios": {**ratios, "meets": meets},
            "load_average_1m": {"before": load_before, "after": load_average()}}


def run() -> dict:
    plan = Plan.from_env()
    kinds = [k.strip().lower() for k in (os.environ.get("BENCH_MESSAGING_DATABASES") or "sqlite,postgresql").split(",")
             if k.strip()]
    per_db = {kind: run_database(kind, plan) for kind in kinds}
    for kind, got in per_db.items():
        missed = [name for name, ok in got["ratios"]["meets"].items() if ok is False]
        log(f"[{kind}] targets " + ("all met" if not missed else f"MISSED: {', '.join(missed)}"))
    return result(
        SCENARIO,
        parameters={
            "databases": kinds,
            "messages_seeded": plan.messages, "big_conversation_messages": plan.big,
            "conversations": plan.conversations, "customers": plan.customers,
            "push_clients": plan.supervisors, "send_listeners": plan.listeners,
            "send_connections": plan.send_conns, "read_connections": plan.read_conns,
            "push_messages": plan.push_messages, "push_interval_s": plan.push_interval_s,
            "duration_s": plan.duration_s, "warmup_s": plan.warmup_s, "text_seed": plan.seed,
            "loadgen": plan.loadgen, "log_level": os.environ.get("UPGESTAO_LOG_LEVEL", "INFO"),
            "target_read_connections": max(plan.read_conns),
        },
        figures={kind: got["figures"] for kind, got in per_db.items()},
        baseline={kind: got["baseline"] for kind, got in per_db.items()},
        ratios={kind: got["ratios"] for kind, got in per_db.items()},
        targets=TARGETS,
        zulip=ZULIP,
        load_average_1m={kind: got["load_average_1m"] for kind, got in per_db.items()},
        notes=[
            "every HTTP figure but the paced ones is a closed loop with keep-alive; GET /v1/ping (gateway -> RPC -> "
            "identity, no auth) is measured at the same connection counts in the same platform just before",
            "a closed loop at c connections has mean latency c / throughput (Little's law): p50 <= 20 ms at c=10 "
            "needs about 500 answers/s, which ping itself may not reach on the machine",
            f"send_paced: 10 connections sending at {plan.paced_load:g} x the closed loop's c=10 rate, each "
            "latency counted from when the request was due; ping_paced: ping at the same rate, just after",
            "send: POST /v1/conversations/{id}/messages as attendant A, outgoing, a different body each time, "
            "with the listed WebSocket listeners connected (the send is pushed and audited for each of them)",
            f"page and search targets are judged at the highest read concurrency (c{max(plan.read_conns)}); "
            "each page opens and audits 50 bodies, each search up to 20",
            "push latency: a client's receipt of message.created - the moment before the POST was written "
            "(one clock, this process); every client must receive every message once, with its body",
            "rss: VmRSS of the messaging service process (python -m upgestao_messaging run) after everything; "
            "peak_rss_mib is its VmHWM",
            "the platform, RabbitMQ, PostgreSQL, the load generator, the WebSocket clients and this process share "
            "the machine's cores: the load average before and after each database's run is recorded",
        ],
    )


if __name__ == "__main__":  # the table: bench/run.py prints it at the end, or python bench/report.py messaging
    raise SystemExit(run_scenario(run, SCENARIO, "BENCH_MESSAGING_TIMEOUT_S", 900, (BenchFailure,)))
