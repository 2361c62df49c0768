# `runAs`: the host account a root-launched cell becomes.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cellLib = import ./lib.nix { inherit lib; };
in
{
  options.runAs = mkOption {
    type = types.nullOr types.str;
    default = null;
    description = ''
      The host account `cell` becomes, for good, when root launches this cell: a cell
      started by root is never root on the host, and the worktree, the cell home and
      the files the agent writes belong to this account. `null`: `programs.cell.runAs`
      (on NixOS the system account `cell`, which the module creates), else the account
      named `cell`. Never `root`. Without root the cell runs as the user who starts it.
    '';
    example = "agent";
  };

  config.assertions.run-as = at: [ (cellLib.runAsAssertion "${at}.runAs" config.runAs) ];
}
