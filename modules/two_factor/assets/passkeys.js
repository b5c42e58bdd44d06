// The passkey page's script (docs/two-factor.md, "The passkey page"): logs in through the JSON
// API (password, then a passkey or a code), then lists, adds, renames and removes the account's
// passkeys. It holds its session's Bearer token in memory only and sends no cookie
// (credentials: "omit"), so it needs no CSRF token and leaves the browser's other sessions alone.
"use strict";
(() => {
  const T = JSON.parse(document.getElementById("text").textContent);
  const $ = (id) => document.getElementById(id);
  const api = (path) => new URL("../api/auth/" + path, location.href).toString();
  let token = null;
  let password = null;
  let step = null;

  function say(kind, text) {
    const status = $("status");
    status.textContent = text;
    status.className = kind;
    status.hidden = false;
  }

  function explain(body) {
    const message = body && body.message;
    return (message && T.messages[message]) || T.failed.replace("{message}", message || "?");
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    const reply = await fetch(api(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    let json = null;
    try {
      json = await reply.json();
    } catch (_) {
      json = null;
    }
    return { status: reply.status, body: json };
  }

  // WebAuthn's JSON forms (base64url for bytes), with the browser's helpers where it has them.
  const bytes = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  };
  const text = (buffer) => {
    if (!buffer) return null;
    let raw = "";
    new Uint8Array(buffer).forEach((b) => (raw += String.fromCharCode(b)));
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const ids = (list) => (list || []).map((c) => Object.assign({}, c, { id: bytes(c.id) }));

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      user: Object.assign({}, json.user, { id: bytes(json.user.id) }),
      excludeCredentials: ids(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      allowCredentials: ids(json.allowCredentials),
    });
  }

  function answer(credential) {
    if (credential.toJSON) return credential.toJSON();
    const r = credential.response;
    const response = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = text(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = text(r.authenticatorData);
      response.signature = text(r.signature);
      response.userHandle = text(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function supported() {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    say("error", T.unsupported);
    return false;
  }

  function show(section) {
    for (const id of ["login", "second", "manage"]) $(id).hidden = id !== section;
  }

  function opened(body) {
    token = body.auth_token;
    step = null;
    say("success", T.logged_in);
    manage();
  }

  async function manage() {
    show("manage");
    const reply = await call("GET", "two-factor/passkeys");
    if (reply.status !== 200) return say("error", explain(reply.body));
    const list = $("passkeys");
    list.replaceChildren();
    const passkeys = reply.body.data.passkeys;
    $("none").hidden = passkeys.length > 0;
    for (const passkey of passkeys) list.append(item(passkey));
  }

  function button(id, label, onClick) {
    const element = document.createElement("button");
    element.type = "button";
    element.className = "secondary";
    element.id = id;
    element.textContent = label;
    element.addEventListener("click", onClick);
    return element;
  }

  function item(passkey) {
    const li = document.createElement("li");
    li.id = "passkey-" + passkey.id;
    const name = document.createElement("input");
    name.type = "text";
    name.maxLength = 64;
    name.value = passkey.name;
    name.id = "passkey-name-" + passkey.id;
    name.setAttribute("aria-label", passkey.name);
    const dates = document.createElement("p");
    dates.className = "dates";
    const used = passkey.last_used_at
      ? T.used_on.replace("{date}", passkey.last_used_at)
      : T.never_used;
    dates.textContent = T.added_on.replace("{date}", passkey.created_at) + " · " + used;
    const save = button("passkey-save-" + passkey.id, T.save, async () => {
      const reply = await call("PATCH", "two-factor/passkeys/" + passkey.id, { name: name.value });
      if (reply.status !== 200) return say("error", explain(reply.body));
      say("success", T.renamed);
      manage();
    });
    const remove = button("passkey-remove-" + passkey.id, T.remove, async () => {
      const reply = await call("DELETE", "two-factor/passkeys/" + passkey.id, { password });
      if (reply.status !== 200) return say("error", explain(reply.body));
      say("success", T.removed);
      manage();
    });
    li.append(name, dates, save, remove);
    return li;
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = $("email").value;
    const typed = $("password").value;
    const reply = await call("POST", "login", { email, password: typed });
    const data = reply.body && reply.body.data;
    if (reply.status === 200 && reply.body.auth_token) {
      password = typed;
      return opened(reply.body);
    }
    if (reply.status === 401 && data && data.step_token) {
      password = typed;
      step = data.step_token;
      $("use-passkey").hidden = !(data.methods || []).includes("passkey");
      $("status").hidden = true;
      return show("second");
    }
    say("error", explain(reply.body));
  });

  $("use-passkey").addEventListener("click", async () => {
    if (!supported()) return;
    const challenge = await call("POST", "two-factor/passkey/challenge", { step_token: step });
    if (challenge.status !== 200) return say("error", explain(challenge.body));
    const { ceremony, options } = challenge.body.data;
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    } catch (_) {
      return say("error", T.cancelled);
    }
    const passkey = { ceremony, credential: answer(credential) };
    const reply = await call("POST", "two-factor/login", { step_token: step, passkey });
    if (reply.status !== 200) return say("error", explain(reply.body));
    opened(reply.body);
  });

  $("code-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = $("code").value.trim();
    const body = { step_token: step };
    if (/^\d{6}$/.test(code)) body.totp_code = code;
    else body.recovery_code = code;
    const reply = await call("POST", "two-factor/login", body);
    if (reply.status !== 200) return say("error", explain(reply.body));
    opened(reply.body);
  });

  $("add-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!supported()) return;
    const name = $("name").value;
    const started = await call("POST", "two-factor/passkeys/register", { password });
    if (started.status !== 200) return say("error", explain(started.body));
    const { ceremony, options } = started.body.data;
    let credential;
    try {
      credential = await navigator.credentials.create({
        publicKey: creationOptions(options.publicKey),
      });
    } catch (_) {
      return say("error", T.cancelled);
    }
    const reply = await call("POST", "two-factor/passkeys", {
      ceremony,
      name,
      credential: answer(credential),
    });
    if (reply.status !== 201) return say("error", explain(reply.body));
    say("success", T.added.replace("{name}", reply.body.data.passkey.name));
    $("name").value = "";
    const codes = reply.body.data.recovery_codes;
    if (codes) {
      $("codes-list").textContent = codes.join("\n");
      $("codes").hidden = false;
    }
    manage();
  });

  $("logout").addEventListener("click", async () => {
    await call("POST", "logout");
    token = null;
    password = null;
    $("codes").hidden = true;
    $("password").value = "";
    say("success", T.logged_out);
    show("login");
  });
})();
