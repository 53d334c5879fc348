// Passkeys: adding one (the account's "Add a passkey" page), signing in with one (the
// login page, with the browser's passkey suggestions where it offers them) and
// confirming a login with one (the confirm page). It talks JSON to quartapp.passkeys,
// sending the page's CSRF token in X-CSRFToken. Without it the buttons stay hidden
// and the password forms work as they always do.
"use strict";

(function () {
  var GENERIC = "Something went wrong with the passkey. Please try again.";
  // A 400 that is a page, not JSON, is the CSRF check's: the page's token ran out.
  var EXPIRED = "This page has expired. Reload it and try again.";

  // base64url (RFC 4648, no padding), as the server sends and expects binary fields.
  function toBytes(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/");
    padded += "===".slice(0, (4 - (padded.length % 4)) % 4);
    var binary = atob(padded);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = withIds(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = withIds(json.allowCredentials);
    return options;
  }

  // What py_webauthn reads of a credential: its ids and type, and the response's
  // fields, each ArrayBuffer as base64url.
  function credentialJSON(credential, response) {
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      response: response,
    };
  }

  function registrationJSON(credential) {
    var response = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toText(response.clientDataJSON),
      attestationObject: toText(response.attestationObject),
      transports: response.getTransports ? response.getTransports() : [],
    });
  }

  function assertionJSON(credential) {
    var response = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toText(response.clientDataJSON),
      authenticatorData: toText(response.authenticatorData),
      signature: toText(response.signature),
      userHandle: response.userHandle ? toText(response.userHandle) : null,
    });
  }

  function csrfToken() {
    var field = document.querySelector("input[name='csrf_token']");
    return field ? field.value : "";
  }

  // POST JSON; resolves to {ok, status, body}, body always an object.
  function post(url, data) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(data),
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var fallback = response.status === 400 ? { error: EXPIRED } : {};
      var json = type.indexOf("application/json") === 0;
      var read = json ? response.json() : Promise.resolve(fallback);
      return read.then(function (body) {
        return { ok: response.ok, status: response.status, body: body || {} };
      });
    });
  }

  // What to tell the person when the browser's part failed; null: say nothing.
  function browserMessage(error) {
    switch (error && error.name) {
      case "AbortError":
        return null;
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. Please try again.";
      case "InvalidStateError":
        return "This device already has a passkey for your account.";
      case "SecurityError":
        return "Passkeys cannot be used at this address.";
      case "NotSupportedError":
        return "This device cannot make a passkey this site accepts.";
      default:
        return GENERIC;
    }
  }

  // WebAuthn refuses an IP address as the site's name (its RP ID), and so does the
  // server: at such an address the ceremonies would only fail.
  function atIpAddress() {
    var host = window.location.hostname;
    return /^[0-9.]+$/.test(host) || host.indexOf(":") >= 0 || host.charAt(0) === "[";
  }

  // The page's "needs JavaScript" sentence: not true once this runs. Says why
  // instead, and returns false, where passkeys cannot work.
  function running(container) {
    var sentence = container.querySelector("[data-passkey-nojs]");
    var reason = null;
    if (atIpAddress()) {
      reason = "Passkeys need the site's name in the address bar, not an IP address.";
    } else if (!window.PublicKeyCredential || !navigator.credentials) {
      reason = "This browser cannot use passkeys.";
    }
    if (sentence) {
      sentence.textContent = reason || "";
      sentence.hidden = !reason;
    }
    return !reason;
  }

  function say(container, message) {
    var status = container.querySelector("[data-passkey-status]");
    if (!status) {
      return;
    }
    // An alert only while it says something: other alerts on the page stay the one.
    if (message) {
      status.setAttribute("role", "alert");
    } else {
      status.removeAttribute("role");
    }
    status.textContent = message || "";
    status.hidden = !message;
  }

  // A sign-in or a confirmation: an assertion posted to the container's data-url.
  // Options (a challenge, held in the session) are asked for when the person acts:
  // a click on the button, or, for the browser's passkey suggestions, the username
  // box taking focus. Never on page load, so a page view costs the server nothing.
  function setupAssertion(container, conditional) {
    var button = container.querySelector("[data-passkey-start]");
    if (!running(container)) {
      return;
    }
    button.hidden = false;
    var pending = null;
    // The last run, settled: a new run asks for options only after it, so the
    // session cookie it sets is the one the answer is checked against.
    var settled = Promise.resolve();

    function extra() {
      var box = document.getElementById("remember_me");
      return conditional ? { remember: Boolean(box && box.checked) } : {};
    }

    function run(quiet) {
      if (pending) {
        pending.abort();
      }
      var controller = new AbortController();
      pending = controller;
      // Whether the person chose a passkey in this run (a click, or a suggestion).
      var picked = !quiet;
      if (!quiet) {
        say(container, "");
      }
      settled = settled
        .then(function () {
          if (controller.signal.aborted) {
            return null;
          }
          return post(container.dataset.optionsUrl, {}).then(function (start) {
            if (!start.ok) {
              throw { server: start.body.error || GENERIC };
            }
            var options = { publicKey: requestOptions(start.body.publicKey) };
            options.signal = controller.signal;
            if (quiet) {
              options.mediation = "conditional";
            }
            return navigator.credentials.get(options);
          });
        })
        .then(function (credential) {
          if (!credential) {
            return null;
          }
          picked = true;
          var data = Object.assign({ credential: assertionJSON(credential) }, extra());
          return post(container.dataset.url, data).then(function (done) {
            if (done.ok && done.body.redirect) {
              window.location.assign(done.body.redirect);
              return;
            }
            throw { server: done.body.error || GENERIC };
          });
        })
        .catch(function (error) {
          if (controller.signal.aborted) {
            return;
          }
          // The browser's suggestions were armed without the person asking for a
          // passkey: until they pick one, a failure (the server down, the options
          // refused, the browser declining) is theirs to never hear about. The
          // password form works as always.
          if (quiet && !picked) {
            return;
          }
          var message = error && error.server ? error.server : browserMessage(error);
          if (message) {
            say(container, message);
          }
        })
        .then(function () {
          if (pending === controller) {
            pending = null;
          }
        });
    }

    button.addEventListener("click", function () {
      run(false);
    });
    // The browser's passkey suggestions in the username box, where it has them:
    // armed when the person goes to the box (a click or a key in it, or focus once
    // they have clicked or typed on this page: the page's autofocus gives it focus with
    // no one there), again after a run. Not navigator.userActivation: Chromium carries
    // it over from the page that sent the browser here (the logout button's click).
    var username = document.getElementById("username");
    if (conditional && username && PublicKeyCredential.isConditionalMediationAvailable) {
      var used = false;
      ["pointerdown", "keydown"].forEach(function (kind) {
        document.addEventListener(kind, function () {
          used = true;
        }, true);
      });
      var offer = function (event) {
        if (pending || (event.type === "focus" && !used)) {
          return;
        }
        PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
          if (available && !pending) {
            run(true);
          }
        });
      };
      ["focus", "pointerdown", "keydown"].forEach(function (kind) {
        username.addEventListener(kind, offer);
      });
    }
  }

  function setupRegistration(form) {
    var button = form.querySelector("[data-passkey-start]");
    if (!running(form)) {
      return;
    }
    button.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      say(form, "");
      var name = form.querySelector("input[name='name']");
      post(form.dataset.optionsUrl, {})
        .then(function (start) {
          if (start.status === 403 && start.body.redirect) {
            window.location.assign(start.body.redirect);
            return null;
          }
          if (!start.ok) {
            throw { server: start.body.error || GENERIC };
          }
          return navigator.credentials.create({ publicKey: creationOptions(start.body.publicKey) });
        })
        .then(function (credential) {
          if (!credential) {
            return null;
          }
          var data = { credential: registrationJSON(credential), name: name ? name.value : "" };
          return post(form.dataset.url, data).then(function (done) {
            if (done.ok && done.body.redirect) {
              window.location.assign(done.body.redirect);
              return;
            }
            throw { server: done.body.error || GENERIC };
          });
        })
        .catch(function (error) {
          say(form, error && error.server ? error.server : browserMessage(error) || GENERIC);
        })
        .then(function () {
          button.disabled = false;
        });
    });
  }

  function start() {
    var login = document.querySelector("[data-passkey-login]");
    if (login) {
      setupAssertion(login, true);
    }
    var confirm = document.querySelector("[data-passkey-confirm]");
    if (confirm) {
      setupAssertion(confirm, false);
    }
    var register = document.querySelector("[data-passkey-register]");
    if (register) {
      setupRegistration(register);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
