# A small stand-in for the parts of nixpkgs' `lib` that nix/module.nix uses, so the module can be evaluated
# on machines without nixpkgs (our CI). Options carry a type with a `check`, so misuse is caught here too.
let
  inherit (builtins) all any attrNames concatStringsSep elem filter foldl' genList head
    isAttrs isBool isInt isList isString length listToAttrs map mapAttrs stringLength substring tail;
in
rec {
  inherit concatStringsSep elem any attrNames;

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = description: mkOption { type = types.bool; default = false; description = "Whether to enable ${description}."; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalAttrs = cond: as: if cond then as else { };
  filterAttrs = pred: set: listToAttrs (map (n: { name = n; value = set.${n}; })
    (filter (n: pred n set.${n}) (attrNames set)));
  mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";

  types = rec {
    bool = { name = "bool"; check = isBool; };
    str = { name = "string"; check = isString; };
    int = { name = "int"; check = isInt; };
    port = { name = "port"; check = v: isInt v && v >= 0 && v <= 65535; };
    package = { name = "package"; check = _: true; };
    enum = values: { name = "one of ${concatStringsSep ", " values}"; check = v: elem v values; };
    listOf = t: { name = "list of ${t.name}"; check = v: isList v && all t.check v; };
    attrsOf = t: { name = "attribute set of ${t.name}"; check = v: isAttrs v && all (n: t.check v.${n}) (attrNames v); };
    nullOr = t: { name = "null or ${t.name}"; check = v: v == null || t.check v; };
  };

  # Resolve mkIf/mkMerge into plain attribute sets, merging like the module system for the types we use:
  # attribute sets recursively, lists by concatenation, strings (`lines`) joined by newlines.
  resolve = v:
    if isAttrs v && (v._type or null) == "if" then (if v.condition then resolve v.content else { })
    else if isAttrs v && (v._type or null) == "merge" then foldl' merge { } (map resolve v.contents)
    else if isAttrs v && !(v ? outPath) then mapAttrs (_: resolve) v
    else v;
  merge = a: b:
    if isAttrs a && isAttrs b then
      a // mapAttrs (n: bv: if a ? ${n} then merge a.${n} bv else bv) b
    else if isList a && isList b then a ++ b
    else if isString a && isString b then a + "\n" + b
    else throw "conflicting definitions: ${builtins.toJSON a} and ${builtins.toJSON b}";

  # Option defaults of a declared option tree, with user values laid over them; returns { value, errors }.
  applyOptions = path: decl: user:
    if (decl._type or null) == "option" then
      let
        hasUser = user != null;
        value = if hasUser then user else (decl.default or (throw "option ${path} has no default and was not set"));
        ok = !hasUser || !(decl ? type) || decl.type.check user;
      in { inherit value; errors = if ok then [ ] else [ "${path}: ${builtins.toJSON user} is not a ${decl.type.name}" ]; }
    else
      let
        unknown = filter (n: !(decl ? ${n})) (attrNames (if user == null then { } else user));
        children = mapAttrs (n: d: applyOptions "${path}.${n}" d (if user != null && user ? ${n} then user.${n} else null)) decl;
      in {
        value = mapAttrs (_: c: c.value) children;
        errors = map (n: "${path}.${n}: no such option") unknown
          ++ builtins.concatLists (map (n: children.${n}.errors) (attrNames children));
      };
}
