"""The dashboards' filter as a form: it validates the query string (dates, batch) into `DashboardFilters`."""

from __future__ import annotations

from django import forms

from annotation_web.dashboards.selectors.filters import DashboardFilters
from annotation_web.labeling.models import Pair, Project

# The query-string value of the batch "pairs made without a batch" (the empty value means every batch).
NO_BATCH = "-"


def batch_choices(*, project: Project) -> list[tuple[str, str]]:
    batches = (
        Pair.objects.filter(project=project).order_by("batch").values_list("batch", flat=True).distinct()
    )
    choices = [("", "every batch")]
    for batch in batches:
        choices.append((batch, batch) if batch else (NO_BATCH, "(no batch)"))
    return choices


class DashboardFilterForm(forms.Form):
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    batch = forms.ChoiceField(required=False, label="Batch")

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        batch = self.fields["batch"]
        assert isinstance(batch, forms.ChoiceField)
        batch.choices = batch_choices(project=project)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            raise forms.ValidationError("The range ends before it starts.")
        return cleaned

    def filters(self) -> DashboardFilters:
        """The filter the form describes (call after `is_valid()`)."""
        batch = self.cleaned_data.get("batch") or None
        return DashboardFilters(
            date_from=self.cleaned_data.get("date_from"),
            date_to=self.cleaned_data.get("date_to"),
            batch="" if batch == NO_BATCH else batch,
        )
