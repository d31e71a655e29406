#!/bin/sh
# Cairn member {{ node.name }}: install the cairn zone's rich rules into the zone of the host's
# interface (ZONE, default public), replacing any earlier cairn rules. Ports not listed stay closed.
set -eu
ZONE="${ZONE:-public}"
fw() { firewall-cmd --permanent --zone="$ZONE" "$@"; }
# Remove rules from an earlier render (they are tagged by port) so re-running converges.
firewall-cmd --permanent --zone="$ZONE" --list-rich-rules | while read -r rule; do
    case "$rule" in
        *'port="{{ node.peer_port }}"'*|*'port="{{ node.client_port }}"'*) fw --remove-rich-rule="$rule" ;;
    esac
done
{% for src in fw.peers_v4 %}fw --add-rich-rule='rule family="ipv4" source address="{{ src }}" port port="{{ node.peer_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.peers_v6 %}fw --add-rich-rule='rule family="ipv6" source address="{{ src }}" port port="{{ node.peer_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.clients_v4 %}fw --add-rich-rule='rule family="ipv4" source address="{{ src }}" port port="{{ node.client_port }}" protocol="tcp" accept'
{% endfor %}{% for src in fw.clients_v6 %}fw --add-rich-rule='rule family="ipv6" source address="{{ src }}" port port="{{ node.client_port }}" protocol="tcp" accept'
{% endfor %}firewall-cmd --reload
