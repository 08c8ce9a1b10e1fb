"""Console forms."""

from django import forms
from django.contrib.auth.password_validation import validate_password

from accounts import keys as keymod


class SignupForm(forms.Form):
    username = forms.SlugField(max_length=60)
    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput, min_length=10)
    organization = forms.CharField(max_length=120, label="Organisation name")

    def clean_password(self):
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in keymod.ALL_SCOPES], required=False,
                                       widget=forms.CheckboxSelectMultiple,
                                       help_text="Leave empty for every scope.")
