// Progressive enhancement only: every page works without this script.
// A form that is being sent ignores further submissions, so a double click
// does not send it twice (the clicked button still carries its value).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.sending === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "1";
  var buttons = form.querySelectorAll("button[type=submit]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].setAttribute("aria-disabled", "true");
  }
  // Going back to a page kept in the back/forward cache makes it usable again.
  window.addEventListener("pageshow", function () {
    delete form.dataset.sending;
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].removeAttribute("aria-disabled");
    }
  }, { once: true });
});

// A form marked data-autosubmit is sent as soon as the page is ready (the
// upstream sign-in's callback, posted again from this site); without script,
// its button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) {
    form.requestSubmit ? form.requestSubmit() : form.submit();
  }
});

// Passkeys (WebAuthn). A form marked data-passkey="get" or "create" carries
// the options the server made (data-options, JSON with base64url bytes):
// sending it runs the ceremony with the authenticator first and posts its
// answer (the credential, as JSON) in the hidden field. With
// data-conditional, the sign-in page also offers the passkeys in the
// username field's autofill. Without WebAuthn the form stays hidden.
(function () {
  function bytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function b64u(buf) {
    var b = new Uint8Array(buf), bin = "";
    for (var i = 0; i < b.length; i++) bin += String.fromCharCode(b[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function ids(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: bytes(c.id) }); });
  }
  function options(kind, json) {
    var o = JSON.parse(json);
    o.challenge = bytes(o.challenge);
    if (kind === "create") {
      o.user = Object.assign({}, o.user, { id: bytes(o.user.id) });
      o.excludeCredentials = ids(o.excludeCredentials);
    } else {
      o.allowCredentials = ids(o.allowCredentials);
    }
    return o;
  }
  function answer(cred) {
    if (cred.toJSON) return JSON.stringify(cred.toJSON());
    var r = cred.response, out = {
      id: cred.id, rawId: b64u(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: { clientDataJSON: b64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = b64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = b64u(r.authenticatorData);
      out.response.signature = b64u(r.signature);
      if (r.userHandle) out.response.userHandle = b64u(r.userHandle);
    }
    return JSON.stringify(out);
  }
  function setUp(form) {
    var kind = form.dataset.passkey, field = form.querySelector("input[name=credential]");
    var error = form.querySelector("[data-passkey-error]"), pending = null;
    function run(mediation) {
      if (pending) pending.abort();
      var abort = new AbortController();
      pending = abort;
      var o = options(kind, form.dataset.options);
      var p = kind === "create" ? navigator.credentials.create({ publicKey: o, signal: abort.signal })
        : navigator.credentials.get({ publicKey: o, mediation: mediation, signal: abort.signal });
      return p.then(function (cred) {
        if (!cred) return;
        field.value = answer(cred);
        form.dataset.sending = "1";
        form.submit();
      });
    }
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      if (field.value) return;
      event.preventDefault();
      event.stopPropagation(); // not "being sent" yet: the ceremony comes first
      if (form.reportValidity && !form.reportValidity()) return;
      run("optional").catch(function (e) {
        if (e && e.name === "AbortError") return;
        error.textContent = form.dataset.failed || error.textContent || "";
        error.hidden = !error.textContent;
        delete form.dataset.sending;
      });
    }, true);
    if (form.dataset.conditional && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok) run("conditional").catch(function () {});
      });
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.PublicKeyCredential || !navigator.credentials) return;
    var forms = document.querySelectorAll("form[data-passkey]");
    for (var i = 0; i < forms.length; i++) setUp(forms[i]);
  });
})();
