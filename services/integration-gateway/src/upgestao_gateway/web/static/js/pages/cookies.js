// Cookie preferences (R7.1): the current choice per purpose, change it (giving and withdrawing take the same
// one click), and the history of every change with its policy version. The logic is in ../consent.js.
import { add, h, tableWrap, mount, notice, formatDate } from "../dom.js";
import { t, register } from "../i18n.js";
import { OPTIONAL, PURPOSES, currentPolicyVersion, getState, record, onRecorded, purposeFields, readPurposes, chosen } from "../consent.js";

register({
  "pt-BR": {
    "cookies.title": "Preferências de cookies",
    "cookies.lead": "Escolha para que usamos cookies. Os essenciais estão sempre ativos; os demais só com a sua permissão, que você pode retirar a qualquer momento, com a mesma facilidade com que a deu.",
    "cookies.current": "Sua escolha atual",
    "cookies.none": "Você ainda não fez uma escolha: apenas os cookies essenciais estão ativos.",
    "cookies.outdated": "Sua escolha foi feita sob a versão {version} da política; a versão em vigor é {current}. Confirme ou mude a sua escolha.",
    "cookies.recordedUnder": "Registrada sob a versão {version} da política.",
    "cookies.on": "Permitido",
    "cookies.off": "Não permitido",
    "cookies.change": "Mudar a escolha",
    "cookies.save": "Salvar minhas escolhas",
    "cookies.acceptAll": "Aceitar todos",
    "cookies.withdrawAll": "Recusar opcionais",
    "cookies.saved": "Sua escolha foi registrada.",
    "cookies.same": "Nada mudou: a mesma escolha já estava registrada.",
    "cookies.failed": "Não foi possível registrar a sua escolha: {error}",
    "cookies.history": "Histórico",
    "cookies.noHistory": "Nenhuma escolha registrada ainda.",
    "cookies.col.when": "Quando",
    "cookies.col.purposes": "Permitidos",
    "cookies.col.changed": "O que mudou",
    "cookies.col.version": "Versão da política",
    "cookies.col.source": "Origem",
    "cookies.col.purpose": "Finalidade",
    "cookies.col.state": "Situação",
    "cookies.source.choice": "Sua escolha",
    "cookies.source.revocation_request": "Pedido de revogação",
    "cookies.nothing": "nenhum opcional",
  },
  en: {
    "cookies.title": "Cookie preferences",
    "cookies.lead": "Choose what we use cookies for. Essential cookies are always on; the others only with your permission, which you can withdraw at any time, as easily as you gave it.",
    "cookies.current": "Your current choice",
    "cookies.none": "You have not chosen yet: only essential cookies are on.",
    "cookies.outdated": "Your choice was made under policy version {version}; the version in effect is {current}. Confirm or change your choice.",
    "cookies.recordedUnder": "Recorded under policy version {version}.",
    "cookies.on": "Allowed",
    "cookies.off": "Not allowed",
    "cookies.change": "Change your choice",
    "cookies.save": "Save my choices",
    "cookies.acceptAll": "Accept all",
    "cookies.withdrawAll": "Reject optional",
    "cookies.saved": "Your choice was recorded.",
    "cookies.same": "Nothing changed: the same choice was already recorded.",
    "cookies.failed": "Your choice could not be recorded: {error}",
    "cookies.history": "History",
    "cookies.noHistory": "No choice recorded yet.",
    "cookies.col.when": "When",
    "cookies.col.purposes": "Allowed",
    "cookies.col.changed": "What changed",
    "cookies.col.version": "Policy version",
    "cookies.col.source": "Source",
    "cookies.col.purpose": "Purpose",
    "cookies.col.state": "State",
    "cookies.source.choice": "Your choice",
    "cookies.source.revocation_request": "Revocation request",
    "cookies.nothing": "no optional purpose",
  },
});

export const access = "public";
export const titleKey = "cookies.title";

const purposeNames = (purposes) => {
  const on = OPTIONAL.filter((name) => purposes && purposes[name]).map((name) => t(`consent.purpose.${name}`));
  return [t("consent.purpose.essential"), ...on].join(", ");
};

/** The history table of a consent state (also used by "Meus dados"). */
export function historyTable(history, lang) {
  if (!history || !history.length) return h("p", {}, t("cookies.noHistory"));
  return tableWrap(t("cookies.history"),
    h("table", {},
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, t("cookies.col.when")),
        h("th", { scope: "col" }, t("cookies.col.purposes")),
        h("th", { scope: "col" }, t("cookies.col.changed")),
        h("th", { scope: "col" }, t("cookies.col.version")),
        h("th", { scope: "col" }, t("cookies.col.source")))),
      h("tbody", {}, history.map((entry) => h("tr", {},
        h("td", {}, h("time", { datetime: entry.recorded_at }, formatDate(entry.recorded_at, lang))),
        h("td", {}, purposeNames(entry.purposes)),
        h("td", {}, (entry.changed || []).map((name) =>
          `${t(`consent.purpose.${name}`)}: ${entry.purposes[name] ? t("cookies.on") : t("cookies.off")}`).join("; ") || "—"),
        h("td", {}, entry.policy_version),
        h("td", {}, t(`cookies.source.${entry.source}`)))))));
}

export default async function render(main, ctx) {
  const [version, state] = await Promise.all([currentPolicyVersion(), getState()]);
  const status = h("div", { id: "cookies-status" });
  const body = h("div", {});
  add(main, h("h1", {}, t("cookies.title")), h("p", {}, t("cookies.lead")), status, body);

  const draw = (current) => {
    const purposes = (current && current.purposes) || { essential: true };
    const save = async (values, button) => {
      for (const b of body.querySelectorAll("button")) b.disabled = true;
      try {
        const recorded = await record(values);
        mount(status, notice(recorded.recorded === false ? t("cookies.same") : t("cookies.saved"), "ok"));
        draw(recorded);
      } catch (error) {
        mount(status, notice(t("cookies.failed", { error: error.message }), "error"));
        for (const b of body.querySelectorAll("button")) b.disabled = false;
        button?.focus();
      }
    };
    const form = h("form", {
      "aria-labelledby": "cookies-change",
      onsubmit: (event) => { event.preventDefault(); save(readPurposes(event.target), event.submitter); },
    },
      purposeFields("cookie", purposes),
      h("div", { class: "actions" },
        h("button", { type: "submit" }, t("cookies.save")),
        h("button", { type: "button", onclick: (e) => save({ analytics: true, personalisation: true }, e.target) }, t("cookies.acceptAll")),
        h("button", { type: "button", onclick: (e) => save({ analytics: false, personalisation: false }, e.target) }, t("cookies.withdrawAll"))));
    mount(body,
      h("h2", {}, t("cookies.current")),
      !version ? notice(t("consent.noPolicy"), "warn") : null,
      !current ? h("p", {}, t("cookies.none")) :
        (chosen(current, version) ? h("p", {}, t("cookies.recordedUnder", { version: current.policy_version })) :
          notice(t("cookies.outdated", { version: current.policy_version, current: version }), "warn")),
      tableWrap(t("cookies.current"),
        h("table", { id: "consent-current" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, t("cookies.col.purpose")),
            h("th", { scope: "col" }, t("cookies.col.state")))),
          h("tbody", {}, PURPOSES.map((name) => h("tr", { dataset: { purpose: name } },
            h("th", { scope: "row" }, t(`consent.purpose.${name}`)),
            h("td", {}, (name === "essential" || purposes[name]) ?
              h("span", { class: "badge badge-ok" }, t("cookies.on")) : h("span", { class: "badge" }, t("cookies.off")))))))),
      h("h2", { id: "cookies-change" }, t("cookies.change")),
      version ? form : null,
      h("h2", {}, t("cookies.history")),
      historyTable(current && current.history, ctx.lang));
  };
  draw(state);
  // a choice made in the banner while this page is open shows here too
  const stop = onRecorded((recorded) => { if (document.body.contains(body)) draw(recorded); else stop(); });
}
