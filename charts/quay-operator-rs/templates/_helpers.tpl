{{- define "quay-operator-rs.name" -}}quay-operator-rs{{- end }}

{{- define "quay-operator-rs.labels" -}}
app.kubernetes.io/name: quay-operator-rs
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "quay-operator-rs.selectorLabels" -}}
app.kubernetes.io/name: quay-operator-rs
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
