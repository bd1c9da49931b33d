# sed -E equivalents of the default redaction rules, for bench/run.py (run with LC_ALL=C).
# Same kinds in the same priority order as redaction-rules.yaml, as far as POSIX ERE with GNU
# extensions (\b, the I flag) can say them: no look-around, no validators (no Luhn), masks
# instead of pseudonyms, and one pass per rule (a later rule may relabel an earlier marker).
s#-----BEGIN[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----#[REDACTED:private-key]#g
s#([A-Za-z][A-Za-z0-9+.-]*://([^][:space:]/@"'<>]+@)?)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?#\1[REDACTED:url-host]#g
s#://[^][:space:]/:@"'<>]+:[^][:space:]/@"'<>]+@#://[REDACTED:url-credentials]@#g
s#((proxy-)?authori[sz]ation["']?[ 	]*[:=][ 	]*(\[?["']?)((basic|bearer|token|negotiate|ntlm)[ 	]+)?)[^][:space:]"',;}]+#\1[REDACTED:authorization-header]#Ig
s#((set-)?cookie["']?[ 	]*[:=][ 	]*)[^]"[:cntrl:]]+#\1[REDACTED:cookie-header]#Ig
s#\b((jsessionid|seraph\.rememberme\.cookie|seraph\.confluence|atlassian\.xsrf\.token|crowd\.token_key)=)[^][:space:];,&"'<>]+#\1[REDACTED:session-cookie]#Ig
s#([?&;](os_password|password|passwd|pwd|pass|token|access_token|refresh_token|id_token|api_key|apikey|secret|client_secret|jwt|auth|signature|sig)=)[^&\#[:space:]"'<>]+#\1[REDACTED:url-secret-params]#Ig
s#([?&;](os_username|username|user|user_name|login)=)[^&\#[:space:]"'<>]+#\1[REDACTED:url-user-params]#Ig
s#eyJ[A-Za-z0-9_-]{2,}\.ey[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*#[REDACTED:jwt]#g
s#\b(AKIA|ASIA)[A-Z0-9]{16}\b#[REDACTED:aws-access-key-id]#g
s#((aws|amazon|secret)[A-Za-z0-9_.-]{0,40}["']?[ 	]*[:= 	][ 	]*["']?)[A-Za-z0-9/+]{40}#\1[REDACTED:aws-secret-key]#Ig
s#(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}#[REDACTED:github-token]#g
s#xox[abposre]-[A-Za-z0-9-]{10,}#[REDACTED:slack-token]#g
s#("[A-Za-z0-9_.-]*(password|passwd|secret|token|credential)[A-Za-z0-9_.-]*"[ 	]*:[ 	]*")[^"]*#\1[REDACTED:secret-keys]#Ig
s#(<[A-Za-z0-9_.:-]*(password|passwd|secret|token|credential)[A-Za-z0-9_.-]*>)[^<]*#\1[REDACTED:secret-keys]#Ig
s#([A-Za-z0-9_.-]*(password|passwd|passphrase|secret|token|pwd|credential|api_?key|access_?key)[A-Za-z0-9_.-]*[ 	]*[:=][ 	]*)[^][:space:]&"'<>,;]+#\1[REDACTED:secret-keys]#Ig
s#\b(((os_)?(user|username|user_name|login))[ 	]*[:=][ 	]*)[A-Za-z0-9._@-]+#\1[REDACTED:db-username]#Ig
s#^([^ "]+ [^ "]+ )([^ "-][^ "]*)( \[[0-3][0-9]/[A-Z][a-z]{2}/)#\1[REDACTED:access-log]\3#
s#[A-Za-z0-9._%+-]+(@|%40)([A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b#[REDACTED:email]#g
s#\b[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4})*::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4})*)?\b#[REDACTED:ipv6]#g
s#\b[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}\b#[REDACTED:mac]#g
s#\b([0-9]{1,3}\.){3}[0-9]{1,3}\b#[REDACTED:ipv4]#g
s#\b[2-6][0-9]{3}([ -]?[0-9]{4}){3}\b#[REDACTED:payment-card]#g
s#-----BEGIN[^-]*-----|^[A-Za-z0-9+/=]{64}$#[REDACTED:private-key]#g
