// Starts GraphiQL on the page served by the Switchyard gateway. A file rather than an inline
// script so that the page's Content-Security-Policy can forbid inline scripts altogether; the
// page passes its settings in data attributes of the #graphiql element.
(function () {
  var element = document.getElementById("graphiql");
  var options = { url: element.getAttribute("data-endpoint") };
  if (element.getAttribute("data-subscriptions") === "true") {
    // Same path as queries; the gateway tells WebSocket upgrades apart by their headers.
    var ws = new URL(options.url, window.location.href);
    ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    options.subscriptionUrl = ws.href;
  }
  var fetcher = GraphiQL.createFetcher(options);
  var root = ReactDOM.createRoot(element);
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      // Absent: GraphiQL's own default (or what the browser kept from an earlier visit).
      defaultQuery: element.getAttribute("data-default-query") || undefined,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    })
  );
})();
