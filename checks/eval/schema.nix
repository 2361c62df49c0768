# Drift between the Nix option tree and the Rust side's JSON Schema
# (rust/docs/cell-config.schema.json, generated from the Rust types): every key the
# modules render must be a property the schema declares, every schema property must be
# reachable from the options, and the enums must agree.
{
  lib,
  root,
  cellLib,
  golden,
  renderCells,
  ...
}:
let
  schema = builtins.fromJSON (builtins.readFile (root + "/rust/docs/cell-config.schema.json"));
  defs = schema."$defs" or schema.definitions or { };

  # Follows `$ref` and picks the object (or array) branch of `anyOf`/`oneOf`.
  resolve =
    node:
    if node ? "$ref" then
      resolve defs.${lib.removePrefix "#/$defs/" (lib.removePrefix "#/definitions/" node."$ref")}
    else if node ? anyOf || node ? oneOf then
      let
        branches = map resolve (node.anyOf or node.oneOf);
        real = builtins.filter (b: b.type or null != "null") branches;
      in
      if builtins.length real == 1 then builtins.head real else node
    else
      node;

  # Paths of `value` the schema node does not declare ("cells.x.mcp").
  unknown =
    path: node': value:
    let
      node = resolve node';
    in
    if builtins.isAttrs value then
      if node ? properties then
        lib.concatLists (
          lib.mapAttrsToList (
            k: v:
            if node.properties ? ${k} then
              unknown "${path}.${k}" node.properties.${k} v
            else if builtins.isAttrs (node.additionalProperties or false) then
              unknown "${path}.${k}" node.additionalProperties v
            else
              [ "${path}.${k}" ]
          ) value
        )
      else if builtins.isAttrs (node.additionalProperties or null) then
        lib.concatLists (lib.mapAttrsToList (k: unknown "${path}.${k}" node.additionalProperties) value)
      else
        [ ]
    else if builtins.isList value && node ? items then
      lib.concatLists (lib.imap0 (i: unknown "${path}[${toString i}]" node.items) value)
    else
      [ ];

  # Every property path the schema declares below a node (`[]` for array items, `*` for
  # map values), to compare with what the renderer can produce.
  declared =
    path: node':
    let
      node = resolve node';
    in
    if node ? properties then
      lib.concatLists (
        lib.mapAttrsToList (k: v: [ "${path}.${k}" ] ++ declared "${path}.${k}" v) node.properties
      )
    else if node ? items then
      declared "${path}[]" node.items
    else if builtins.isAttrs (node.additionalProperties or null) then
      declared "${path}.*" node.additionalProperties
    else
      [ ];

  # The same paths for a rendered document, with names and indices generalised.
  produced =
    path: value:
    if builtins.isAttrs value then
      lib.concatLists (
        lib.mapAttrsToList (
          k: v:
          let
            p = if builtins.elem path mapPaths then "${path}.*" else "${path}.${k}";
          in
          [ p ] ++ produced p v
        ) value
      )
    else if builtins.isList value then
      lib.concatMap (produced "${path}[]") value
    else
      [ ];
  # Objects whose keys are names (cells, environment variables, pins, servers).
  mapPaths = [
    ".cells"
    ".cells.*.env"
    ".cells.*.envFromFile"
    ".cells.*.network.hosts"
    ".cells.*.mcp.servers"
    ".cells.*.mcp.servers.*.env"
    ".cells.*.mcp.servers.*.headers"
    ".cells.*.sidecars"
    ".cells.*.sidecars.*.env"
    ".cells.*.sidecars.*.envFromFile"
    ".cells.*.sidecars.*.cellFiles"
  ];

  goldens = map golden [
    "full"
    "minimal"
    "mk-cell"
  ];
  allUnknown = lib.unique (lib.concatMap (unknown "" schema) goldens);

  # A cell with everything `chromium` offers, rendered: the browser lives on the Nix side;
  # only its MCP server reaches the JSON.
  browserDoc = renderCells {
    cells = {
      web.chromium = {
        enable = true;
        extensions.capsolver.enable = true;
        extraFlags = [ "--headless=new" ];
        mcp.enable = true;
      };
      plain = { };
    };
  };

  # Rendered but not in the committed schema (none: every rendered key is declared).
  pending = [ ];

  # Values of a string enum in the schema.
  enumValues = name: map (b: b.const) defs.${name}.oneOf;
  # Values of an option's enum in the cell submodule.
  optionEnum =
    loc:
    let
      opts = cellLib.cellType.getSubOptions [ ];
      opt = lib.attrByPath loc null opts;
      t = opt.type;
      inner = if t.name == "nullOr" then t.nestedTypes.elemType else t;
    in
    inner.functor.payload.values or inner.functor.payload;
  subEnum =
    sub: loc:
    let
      t = (lib.attrByPath sub null (cellLib.cellType.getSubOptions [ ])).type;
      s =
        if t.name == "nullOr" || t.name == "listOf" || t.name == "attrsOf" then
          t.nestedTypes.elemType
        else
          t;
      o = lib.attrByPath loc null (s.getSubOptions [ ]);
    in
    o.type.functor.payload.values or o.type.functor.payload;
in
{
  testSchemaEveryRenderedKeyIsDeclared = {
    expr = allUnknown;
    expected = pending;
  };

  testSchemaEveryDeclaredPropertyIsRendered = {
    expr =
      let
        have = lib.unique (lib.concatMap (produced "") (goldens ++ [ browserDoc ]));
      in
      builtins.filter (p: !(builtins.elem p have)) (lib.unique (declared "" schema));
    expected = [ ];
  };

  testSchemaChromiumAddsItsBrowserAndAnMcpServer = {
    expr =
      let
        command = browserDoc.cells.web.browser.command;
      in
      {
        unknown = unknown "" schema browserDoc;
        extra = builtins.filter (k: !(builtins.elem k (builtins.attrNames browserDoc.cells.plain))) (
          builtins.attrNames browserDoc.cells.web
        );
        servers = builtins.attrNames browserDoc.cells.web.mcp.servers;
        program = lib.hasSuffix "/bin/chromium" (builtins.head command);
        args = map (a: builtins.head (lib.splitString "=" a)) (builtins.tail command);
      };
    expected = {
      unknown = [ ];
      extra = [
        "browser"
        "mcp"
      ];
      servers = [ "playwright" ];
      program = true;
      args = [
        "--no-sandbox"
        "--load-extension"
        "--disable-extensions-except"
        "--headless"
      ];
    };
  };

  testSchemaVersion = {
    expr = {
      nix = cellLib.schemaVersion;
      required = schema.required;
    };
    expected = {
      nix = 1;
      required = [
        "schemaVersion"
        "cells"
      ];
    };
  };

  testSchemaEnumsAgree = {
    expr = {
      network = optionEnum [
        "network"
        "mode"
      ];
      agent = subEnum [ "agent" ] [ "kind" ];
      bind = subEnum [ "binds" ] [ "mode" ];
      fragment = subEnum [ "fragments" ] [ "onFailure" ];
    };
    expected = {
      network = enumValues "NetworkMode";
      agent = enumValues "AgentKind";
      bind = enumValues "BindMode";
      fragment = enumValues "FailurePolicy";
    };
  };
}
