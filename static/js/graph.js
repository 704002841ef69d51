// The /graph/ page: fetches /api/v1/graph (remotes.graph.dependency_graph) and draws it with the vendored
// cytoscape.js (static/vendor/cytoscape/): one box per repository, a node per issue or spec coloured by status,
// dashed for other repositories, red for cycles. Zoom and pan are cytoscape's; a click opens the node's page
// (ours, or the remote node's); the filters hide repositories and statuses; "What blocks" highlights the chain of
// blockers of one issue (blocks / depends-on / blocked-by edges, followed to the end, cycles included once).
(function () {
  "use strict";
  var configNode = document.getElementById("graph-config");
  if (!configNode || typeof window.cytoscape !== "function") return;
  var config = JSON.parse(configNode.textContent);
  var message = document.getElementById("graph-message");
  var COLOURS = { closed: "#16a34a", in_progress: "#d97706", blocked: "#dc2626", open: "#2563eb", needs_review: "#7c3aed" };
  var hiddenRepos = {};
  var hiddenStatuses = {};
  var graph = null;
  var cy = null;

  function statusOf(node) {
    return node.kind === "spec" ? "spec" : node.status || "unknown";
  }

  // The CLI's "⧗" (open) is missing from common fonts (headless Chromium draws a box): the page draws "○".
  function shown(symbol) { return symbol === "\u29D7" ? "\u25CB" : symbol; }

  function pageOf(node) {
    if (node.local) return node.title === null ? null : config.pages[node.kind].replace("__ID__", encodeURIComponent(node.id));
    return node.page;
  }

  // What blocks `ref`, transitively: the blocker of an edge is its source for "blocks", its target otherwise.
  function blockersOf(ref) {
    var waitsFor = {};
    graph.edges.forEach(function (e) {
      if (!e.blocking) return;
      var blocker = e.type === "blocks" ? e.from : e.to;
      var blocked = e.type === "blocks" ? e.to : e.from;
      (waitsFor[blocked] = waitsFor[blocked] || []).push({ blocker: blocker, edge: e });
    });
    var nodes = {};
    var edges = [];
    var queue = [ref];
    nodes[ref] = true;
    while (queue.length) {
      var current = queue.shift();
      (waitsFor[current] || []).forEach(function (w) {
        edges.push(w.edge);
        if (!nodes[w.blocker]) {
          nodes[w.blocker] = true;
          queue.push(w.blocker);
        }
      });
    }
    return { nodes: nodes, edges: edges };
  }

  function edgeId(e) {
    return "e:" + e.from + "\u0000" + e.to + "\u0000" + e.type;
  }

  function elements() {
    var out = [];
    var repos = {};
    graph.nodes.forEach(function (n) {
      var repo = n.repo || "this repository";
      if (!repos[repo]) {
        repos[repo] = true;
        out.push({ data: { id: "repo:" + repo, label: repo }, classes: "repo" });
      }
      var title = n.title ? (n.title.length > 40 ? n.title.slice(0, 39) + "…" : n.title) : "(unknown)";
      out.push({
        data: {
          id: n.ref,
          parent: "repo:" + repo,
          label: n.id + " " + shown(n.symbol) + "\n" + title,
          colour: COLOURS[n.status] || "#6b7280",
          status: statusOf(n),
          repo: repo,
          node: n,
        },
        classes: [n.local ? "local" : "remote", n.in_cycle ? "cycle" : "", n.ref === graph.root ? "root" : ""].join(" "),
      });
    });
    graph.edges.forEach(function (e) {
      out.push({
        data: { id: edgeId(e), source: e.from, target: e.to, label: e.type },
        classes: [e.blocking ? "blocking" : "", e.in_cycle ? "cycle" : "", e.cross_repo ? "cross" : ""].join(" "),
      });
    });
    return out;
  }

  function checkbox(container, value, hidden, onChange) {
    var label = document.createElement("label");
    var input = document.createElement("input");
    input.type = "checkbox";
    input.checked = !hidden[value];
    input.addEventListener("change", function () {
      if (input.checked) delete hidden[value];
      else hidden[value] = true;
      onChange();
    });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + value));
    container.appendChild(label);
  }

  function applyFilters() {
    cy.batch(function () {
      cy.nodes().not(".repo").forEach(function (n) {
        var hide = hiddenRepos[n.data("repo")] || hiddenStatuses[n.data("status")];
        n.toggleClass("hidden", !!hide);
      });
      cy.nodes(".repo").forEach(function (r) {
        r.toggleClass("hidden", !!hiddenRepos[r.data("label")]);
      });
    });
  }

  function highlight(ref) {
    cy.elements().removeClass("faded chain chosen");
    if (!ref) return;
    var chain = blockersOf(ref);
    cy.batch(function () {
      cy.nodes().not(".repo").forEach(function (n) {
        n.toggleClass("faded", !chain.nodes[n.id()]);
      });
      cy.edges().addClass("faded");
      chain.edges.forEach(function (e) {
        cy.getElementById(edgeId(e)).removeClass("faded").addClass("chain");
      });
      cy.getElementById(ref).addClass("chosen");
    });
    var count = Object.keys(chain.nodes).length - 1;
    message.textContent = count ? ref + " waits for " + count + " issue(s), highlighted." : ref + " is blocked by nothing drawn here.";
  }

  function controls() {
    var repos = document.getElementById("graph-repos");
    var statuses = document.getElementById("graph-statuses");
    var select = document.getElementById("graph-blockers");
    var seenRepos = {};
    var seenStatuses = {};
    graph.nodes.forEach(function (n) {
      seenRepos[n.repo || "this repository"] = true;
      seenStatuses[statusOf(n)] = true;
      if (n.kind !== "spec") {
        var option = document.createElement("option");
        option.value = n.ref;
        option.textContent = n.ref + (n.title ? " — " + n.title : "");
        select.appendChild(option);
      }
    });
    Object.keys(seenRepos).sort().forEach(function (r) {
      checkbox(repos, r, hiddenRepos, applyFilters);
    });
    Object.keys(seenStatuses).sort().forEach(function (s) {
      checkbox(statuses, s, hiddenStatuses, applyFilters);
    });
    select.addEventListener("change", function () {
      highlight(select.value);
    });
    document.getElementById("graph-fit").addEventListener("click", function () {
      cy.fit(undefined, 30);
    });
    if (graph.root) {
      select.value = graph.root;
      highlight(graph.root);
    }
  }

  function notes() {
    var box = document.getElementById("graph-notes");
    var lines = [];
    graph.cycles.forEach(function (c) {
      lines.push("Cycle: " + c.path.join(" → ") + " (across " + c.repos.join(", ") + ")");
    });
    graph.remotes.forEach(function (r) {
      if (r.error) lines.push("Not expanded from " + r.url + ": " + r.error);
    });
    lines.forEach(function (text) {
      var p = document.createElement("p");
      p.className = "warn";
      p.textContent = text;
      box.appendChild(p);
    });
  }

  // On a narrow screen a fitted graph of many nodes is too small to read: zoom in to a readable size around the
  // root (or the first node) instead; drag to pan, and "Fit" shows the whole graph.
  var READABLE_ZOOM = 0.6;

  function readable() {
    if (cy.zoom() >= READABLE_ZOOM || !cy.nodes().length) return;
    var centre = graph.root && cy.getElementById(graph.root).length ? cy.getElementById(graph.root) : cy.nodes().first();
    cy.zoom(READABLE_ZOOM);
    cy.center(centre);
  }

  function draw() {
    cy = window.cytoscape({
      container: document.getElementById("graph"),
      elements: elements(),
      style: [
        { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "text-valign": "center", "font-size": 10,
          shape: "round-rectangle", width: 130, height: 38, "background-color": "#fff", "border-width": 2,
          "border-color": "data(colour)", color: "#111827" } },
        { selector: "node.remote", style: { "border-style": "dashed" } },
        { selector: "node.cycle", style: { "border-color": "#dc2626", "border-width": 4 } },
        { selector: "node.root, node.chosen", style: { "background-color": "#fef9c3" } },
        { selector: "node.repo", style: { label: "data(label)", "text-valign": "top", "font-size": 12, "font-weight": "bold",
          "background-color": "#f8fafc", "border-color": "#cbd5e1", "border-width": 1, shape: "round-rectangle" } },
        { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", label: "data(label)",
          "font-size": 8, "line-color": "#94a3b8", "target-arrow-color": "#94a3b8", "text-background-color": "#fff",
          "text-background-opacity": 1 } },
        { selector: "edge.cross", style: { "line-style": "dashed" } },
        { selector: "edge.cycle", style: { "line-color": "#dc2626", "target-arrow-color": "#dc2626", width: 2.5 } },
        { selector: "edge.chain", style: { "line-color": "#b45309", "target-arrow-color": "#b45309", width: 3 } },
        { selector: ".faded", style: { opacity: 0.15 } },
        { selector: ".hidden", style: { display: "none" } },
      ],
      layout: graph.root
        ? { name: "breadthfirst", roots: [graph.root], directed: false, spacingFactor: 1.1, padding: 30 }
        : { name: "cose", animate: false, padding: 30, nodeRepulsion: function () { return 9000; } },
    });
    readable();
    cy.on("tap", "node", function (event) {
      var n = event.target.data("node");
      if (!n) return;
      var href = pageOf(n);
      if (href) window.location.href = href;
      else message.textContent = n.ref + ": " + (n.note || "no page to open for it");
    });
    message.textContent =
      graph.nodes.length + " nodes, " + graph.edges.length + " edges" + (graph.cycles.length ? ", " + graph.cycles.length + " cycle(s)" : "") + ".";
    controls();
    notes();
  }

  function load() {
    var form = document.getElementById("graph-form");
    Object.keys(config.params).forEach(function (k) {
      var input = form.elements[k];
      if (!input) return;
      if (input.type === "checkbox") input.checked = config.params[k] === "1" || config.params[k] === "true";
      else input.value = config.params[k];
    });
    var query = new URLSearchParams(config.params).toString();
    var url = config.api + (query ? "?" + query : "");
    document.getElementById("graph-json").href = url;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            var field = Object.keys(body)[0];
            throw new Error(field + ": " + [].concat(body[field]).join(" "));
          }
          return body;
        });
      })
      .then(function (body) {
        graph = body;
        draw();
      })
      .catch(function (error) {
        message.textContent = "The graph could not be drawn: " + error.message;
        message.className = "warn";
      });
  }

  load();
})();
