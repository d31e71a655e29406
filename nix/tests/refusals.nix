# Module definitions NixOS must refuse, with the message the test expects from nixpkgs' module system
# (eval-refused.nix evaluates one; eval-module.nix checks each fails).
let
  member = (import ../appliance.nix { }).services.cairn;
in
{
  # An enum option set to a value outside it.
  bad-cluster-state = {
    modules = [ { services.cairn = member // { initialClusterState = "bogus"; }; } ];
    message = "A definition for option `services.cairn.initialClusterState' is not of type `one of \"new\", \"existing\"'";
  };
  # A misspelt option name.
  misspelt-option = {
    modules = [ { services.cairn = member // { initalCluster = { }; }; } ];
    message = "The option `services.cairn.initalCluster' does not exist.";
  };
  # A port given as a string.
  port-as-string = {
    modules = [ { services.cairn = member // { clientPort = "2379"; }; } ];
    message = "A definition for option `services.cairn.clientPort' is not of type `16 bit unsigned integer; between 0 and 65535 (both inclusive)'";
  };
  # A wrong type in an option nothing reads while the service is disabled: only forcing every option finds it.
  unread-option-wrong-type = {
    modules = [ { services.cairn = { name = "x"; logFile = 5; }; } ];
    message = "A definition for option `services.cairn.logFile' is not of type `null or string'";
  };
  # Two modules giving one string option different values at the same priority.
  conflicting-definitions = {
    modules = [ { services.cairn = member; } { services.cairn.name = "infra1"; } ];
    message = "The option `services.cairn.name' has conflicting definition values";
  };
}
